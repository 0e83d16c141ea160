"""Checks of the security groups on the path to the tasks."""

from __future__ import annotations

from vpclink_runbooks.checks.facts import (
    _admits,
    _nlb_cidrs,
    _unadmitted,
)
from vpclink_runbooks.checks.inventory import Inventory
from vpclink_runbooks.checks.registry import Result, check
from vpclink_runbooks.steps.load_balancer import EPHEMERAL_RANGE

# -- security group --

@check(id="security_group.nlb_subnets", hop="security_group", severity="error", repaired_by="ecs",
       remedy="add ingress on the host port from the NLB subnets to the instance group")
@check(id="security_group.nlb_group", hop="security_group", severity="error", repaired_by="ecs",
       remedy="add ingress on the host port from the NLB's own group to the instance group")
@check(id="security_group.no_wide_rule", hop="security_group", severity="warn", repaired_by=None,
       remedy="remove the rule admitting the port from 0.0.0.0/0 (its owner's to change)")
@check(id="security_group.task_group", hop="security_group", severity="error", repaired_by="ecs",
       remedy="create the tasks' group admitting the container port from the load balancer")
@check(id="security_group.task_attached", hop="security_group", severity="error", repaired_by="ecs",
       remedy="update the service's network configuration to the tasks' group")
@check(id="security_group.alb_to_instances", hop="security_group", severity="error", repaired_by="ecs",
       remedy="add ingress on the ephemeral range from the ALB's group to the instance group")
def security_group_admits_nlb(inv: Inventory) -> list[Result]:
    """Instance security groups admit the host port from the NLB subnets, and nothing from everywhere."""
    s = inv.params.service
    if inv.params.awsvpc:
        return _task_group(inv)
    if inv.params.dynamic_host_ports:
        return _alb_to_instances(inv)
    out = []
    running = [i for i, inst in inv.instances.items() if inst.get("State", {}).get("Name") == "running"]
    nlb_groups = set((inv.lb or {}).get("SecurityGroups") or [])
    if running and nlb_groups:
        out.append(_from_nlb_group(inv, running, nlb_groups))
    elif not running or not inv.subnets:
        out.append(Result("security_group.nlb_subnets", "security_group", "skip",
                          "no running instance or no NLB subnet to compare"))
    else:
        missing = _unadmitted(inv)
        if missing:
            shown = "; ".join(f"{i} from {c}" for i, c in missing.items())
            lacking = sorted({c for cidrs in missing.values() for c in cidrs})
            out.append(Result("security_group.nlb_subnets", "security_group", "fail",
                              f"no ingress on tcp:{s.host_port} for {shown}: NLB health checks and traffic from "
                              "those subnets are dropped",
                              f"add ingress tcp:{s.host_port} from {lacking} to the instance security group "
                              "(repair does)"))
        else:
            out.append(Result("security_group.nlb_subnets", "security_group", "pass",
                              f"tcp:{s.host_port} admitted from {_nlb_cidrs(inv)} on {len(running)} instance(s)"))
    wide = [r for r in inv.all_rules if _admits(r, s.host_port, "0.0.0.0/0")]
    if wide:
        out.append(Result("security_group.no_wide_rule", "security_group", "fail",
                          f"{wide[0]['GroupId']} rule {wide[0].get('SecurityGroupRuleId')} admits tcp:{s.host_port} "
                          "from 0.0.0.0/0",
                          "remove that rule; only the NLB subnets need the host port (the runbook did not create "
                          "it and leaves it to its owner)"))
    return out


def _from_nlb_group(inv: Inventory, running: list[str], nlb_groups: set[str]) -> Result:
    """An NLB with security groups: each instance admits the host port by a rule naming one of them. A CIDR rule
    admits it too, but also every other host in that range."""
    port = inv.params.service.host_port
    shown = ", ".join(sorted(nlb_groups))
    by_group, by_cidr = [], []
    for instance_id in sorted(running):
        groups = {g["GroupId"] for g in inv.instances[instance_id].get("SecurityGroups", [])}
        rules = [r for r in inv.all_rules if r["GroupId"] in groups]
        if any((r.get("ReferencedGroupInfo") or {}).get("GroupId") in nlb_groups and _admits(r, port, "0.0.0.0/0",
                                                                                               nlb_groups)
               for r in rules):
            by_group.append(instance_id)
        elif instance_id not in _unadmitted(inv):
            by_cidr.append(instance_id)
    lacking = sorted(set(running) - set(by_group) - set(by_cidr))
    if lacking:
        return Result("security_group.nlb_group", "security_group", "fail",
                      f"{lacking} do not admit tcp:{port} from the NLB's group {shown}: health checks and traffic "
                      "are dropped", f"add ingress tcp:{port} from {shown} to the instance security group "
                      "(repair does)")
    if by_cidr:
        return Result("security_group.nlb_group", "security_group", "warn",
                      f"{by_cidr} admit tcp:{port} by CIDR, not from the NLB's group {shown}: every host in that "
                      "range reaches the port",
                      f"admit tcp:{port} from {shown} and drop the CIDR rule (repair does for the runbook's rules)")
    return Result("security_group.nlb_group", "security_group", "pass",
                  f"tcp:{port} admitted from the NLB's group {shown} on {len(running)} instance(s)")


def _task_group(inv: Inventory) -> list[Result]:
    """awsvpc: the tasks' own group admits the container port from the load balancer only."""
    n, port = inv.names, inv.params.service.container_port
    group = inv.groups.get(n.task_security_group)
    if group is None:
        return [Result("security_group.task_group", "security_group", "fail",
                       f"no security group {n.task_security_group} for the tasks", "create it (repair does)")]
    rules = inv.group_rules.get(n.task_security_group, [])
    if inv.params.nlb.type == "application":
        alb = inv.groups.get(n.alb_security_group) or {}
        admitted = any(_admits(r, port, "255.255.255.255/32", {alb.get("GroupId")}) for r in rules)
        lacking = [] if admitted else [alb.get("GroupId", n.alb_security_group)]
    elif (inv.lb or {}).get("SecurityGroups"):
        nlb_groups = set(inv.lb["SecurityGroups"])
        admitted = any((r.get("ReferencedGroupInfo") or {}).get("GroupId") in nlb_groups
                       and _admits(r, port, "0.0.0.0/0", nlb_groups) for r in rules)
        lacking = [] if admitted else sorted(nlb_groups)
    else:
        lacking = [c for c in _nlb_cidrs(inv) if not any(_admits(r, port, c) for r in rules)]
    out = []
    if lacking:
        out.append(Result("security_group.task_group", "security_group", "fail",
                          f"{group['GroupId']} ({n.task_security_group}) does not admit tcp:{port} from {lacking}: "
                          "health checks and traffic to the tasks are dropped",
                          f"add ingress tcp:{port} from {lacking} to {group['GroupId']} (repair does)"))
    else:
        out.append(Result("security_group.task_group", "security_group", "pass",
                          f"{group['GroupId']} admits tcp:{port} from the load balancer"))
    service_groups = ((inv.service or {}).get("networkConfiguration") or {}).get(
        "awsvpcConfiguration", {}).get("securityGroups")
    if inv.service and service_groups != [group["GroupId"]]:
        out.append(Result("security_group.task_attached", "security_group", "fail",
                          f"the service's tasks are in {service_groups}, not {group['GroupId']}",
                          "update the service's network configuration (repair does)"))
    wide = [r for r in rules if _admits(r, port, "0.0.0.0/0")]
    if wide:
        out.append(Result("security_group.no_wide_rule", "security_group", "fail",
                          f"{group['GroupId']} admits tcp:{port} from 0.0.0.0/0", "remove that rule"))
    return out


def _alb_to_instances(inv: Inventory) -> list[Result]:
    """Bridge behind an ALB: instance groups admit the ephemeral range from the ALB's group only."""
    alb = inv.groups.get(inv.names.alb_security_group) or {}
    low, high = EPHEMERAL_RANGE
    missing = []
    for instance_id, inst in sorted(inv.instances.items()):
        if inst.get("State", {}).get("Name") != "running":
            continue
        groups = {g["GroupId"] for g in inst.get("SecurityGroups", [])}
        rules = [r for r in inv.all_rules if r["GroupId"] in groups]
        ok = any(r.get("FromPort", 99999) <= low and r.get("ToPort", -1) >= high
                 and (r.get("ReferencedGroupInfo") or {}).get("GroupId") == alb.get("GroupId") for r in rules)
        if not ok:
            missing.append(instance_id)
    if missing:
        return [Result("security_group.alb_to_instances", "security_group", "fail",
                       f"{missing} do not admit tcp:{low}-{high} (dynamic host ports) from the ALB's group "
                       f"{alb.get('GroupId', 'missing')}: health checks fail",
                       f"add ingress tcp:{low}-{high} from {alb.get('GroupId')} to the instance group (repair does)")]
    wide = [r for r in inv.all_rules if _admits(r, low, "0.0.0.0/0")]
    out = [Result("security_group.alb_to_instances", "security_group", "pass",
                  f"tcp:{low}-{high} admitted from {alb.get('GroupId')} only")]
    if wide:
        out.append(Result("security_group.no_wide_rule", "security_group", "fail",
                          f"{wide[0]['GroupId']} admits the ephemeral range from 0.0.0.0/0", "remove that rule"))
    return out

