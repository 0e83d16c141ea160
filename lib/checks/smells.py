"""Security smells: what works but admits more than the load balancer, named as warnings with a remedy.

A rule admitting the port from 0.0.0.0/0 is a failure (security_group.no_wide_rule); these are the quieter
cousins. None of them stops a request, so none is repaired: the rules and load balancers are not the runbook's
(it never creates them), and a port the task definition maps beyond the params is the definition's author's call.
Every fact comes from the inventory verify already holds (the VPC's CIDR blocks from inspect's DescribeVpcs).
"""

from __future__ import annotations

import ipaddress

from vpclink_runbooks.checks.inventory import Inventory
from vpclink_runbooks.checks.registry import Result, check
from vpclink_runbooks.steps.load_balancer import EPHEMERAL_RANGE


def _guarded(inv: Inventory) -> tuple[list[dict], list[int], str]:
    """The inbound rules in front of the tasks, the ports they guard, and what those groups are: the instances'
    groups (bridge: the host ports, or the ephemeral range behind an ALB) or the tasks' own group (awsvpc)."""
    p = inv.params
    s = p.service
    if p.awsvpc:
        rules = inv.group_rules.get(inv.names.task_security_group, [])
        return rules, [s.container_port] + [e.container_port for e in s.extra_ports], "the tasks' group"
    ports = [EPHEMERAL_RANGE[0]] if p.dynamic_host_ports else [s.host_port] + [e.host_port for e in s.extra_ports]
    return inv.all_rules, ports, "the instances' group"


def _covers(rule: dict, port: int) -> bool:
    if rule.get("IpProtocol") == "-1":
        return True
    return rule.get("IpProtocol") == "tcp" and rule.get("FromPort", -1) <= port <= rule.get("ToPort", -1)


def _vpc_cidrs(inv: Inventory) -> list[ipaddress.IPv4Network]:
    vpc = (inv.world.vpc if inv.world else None) or {}
    blocks = [a["CidrBlock"] for a in vpc.get("CidrBlockAssociationSet", [])
              if (a.get("CidrBlockState") or {}).get("State", "associated") == "associated"] or \
        ([vpc["CidrBlock"]] if vpc.get("CidrBlock") else [])
    return [ipaddress.ip_network(b) for b in blocks]


def _rule_name(rule: dict) -> str:
    return f"{rule['GroupId']} rule {rule.get('SecurityGroupRuleId', '?')}"


@check(id="security_group.open_to_ipv6_world", hop="security_group", severity="warn", repaired_by=None,
       remedy="remove the rule admitting the port from ::/0; the load balancer reaches the port over IPv4")
@check(id="security_group.open_to_vpc", hop="security_group", severity="warn", repaired_by=None,
       remedy="narrow the rule admitting the port from the whole VPC CIDR to the load balancer's group or subnets")
def security_group_smells(inv: Inventory) -> list[Result]:
    """The guarded port open to every IPv6 address, or to every host of the VPC (a CIDR the size of the VPC's)."""
    rules, ports, where = _guarded(inv)
    vpc = _vpc_cidrs(inv)
    out = []
    ipv6 = [(r, port) for r in rules for port in ports if r.get("CidrIpv6") == "::/0" and _covers(r, port)]
    if ipv6:
        rule, port = ipv6[0]
        out.append(Result("security_group.open_to_ipv6_world", "security_group", "warn",
                          f"{_rule_name(rule)} in {where} admits tcp:{port} from ::/0: any IPv6 host that can "
                          "route to the instances reaches the service around API Gateway",
                          f"remove {rule.get('SecurityGroupRuleId')} from {rule['GroupId']} (aws ec2 "
                          "revoke-security-group-ingress); the load balancer does not need it"))
    wide = []
    for rule in rules:
        try:
            source = ipaddress.ip_network(rule.get("CidrIpv4") or "")
        except ValueError:
            continue
        if source.prefixlen == 0:
            continue  # 0.0.0.0/0 is security_group.no_wide_rule's failure
        covered = [b for b in vpc if b.subnet_of(source)]
        wide += [(rule, port, covered[0]) for port in ports if covered and _covers(rule, port)]
    if wide:
        rule, port, block = wide[0]
        out.append(Result("security_group.open_to_vpc", "security_group", "warn",
                          f"{_rule_name(rule)} in {where} admits tcp:{port} from {rule['CidrIpv4']}, all of the VPC's "
                          f"{block}: every host in the VPC reaches the service without API Gateway",
                          f"replace {rule['CidrIpv4']} by the load balancer's security group (or its subnets' "
                          f"CIDRs) in {rule['GroupId']}"))
    return out


@check(id="nlb.other_internet_facing", hop="nlb", severity="warn", repaired_by=None,
       remedy="delete the environment's internet-facing load balancer, or recreate it with scheme internal")
def internet_facing_load_balancers(inv: Inventory) -> list[Result]:
    """A load balancer with one of this environment's names (the other type's, from an earlier apply) in the VPC
    that is internet-facing: the runbook's own is judged by nlb.active."""
    ours = (inv.lb or {}).get("LoadBalancerArn")
    names = set(inv.names.load_balancer_names)
    facing = [lb for lb in (inv.world.load_balancers if inv.world else [])
              if lb["LoadBalancerName"] in names and lb["LoadBalancerArn"] != ours
              and lb.get("Scheme") == "internet-facing"]
    return [Result("nlb.other_internet_facing", "nlb", "warn",
                   f"{lb['LoadBalancerName']} ({lb['Type']}) is internet-facing in {lb.get('VpcId')}: if it still "
                   "forwards to the service's targets, the service is on the internet",
                   f"delete {lb['LoadBalancerName']} (aws elbv2 delete-load-balancer --load-balancer-arn "
                   f"{lb['LoadBalancerArn']}) once nothing uses it") for lb in facing]


@check(id="task_definition.host_port_not_in_params", hop="task_definition", severity="warn", repaired_by=None,
       remedy="apply the params' task definition (apply does), or add the port to service.extra_ports")
def host_ports_beyond_params(inv: Inventory) -> list[Result]:
    """Bridge mode: a container port the live task definition (or a running task) binds on the host that neither
    service.container_port nor service.extra_ports names: the instance exposes it to whatever its groups admit."""
    s = inv.params.service
    if inv.params.awsvpc or inv.task_definition is None:
        return []
    listed = {s.container_port} | {e.container_port for e in s.extra_ports}
    mapped = {m["containerPort"]: m.get("hostPort") for c in inv.task_definition.get("containerDefinitions", [])
              for m in c.get("portMappings", []) if m.get("containerPort") not in listed}
    for task in inv.tasks:
        mapped.update({c: h for c, h in task.get("bindings", {}).items() if c not in listed and c not in mapped})
    if not mapped:
        return []
    shown = ", ".join(f"{h or 'an ephemeral port'}->{c}" for c, h in sorted(mapped.items()))
    td = f"{inv.task_definition['family']}:{inv.task_definition['revision']}"
    return [Result("task_definition.host_port_not_in_params", "task_definition", "warn",
                   f"{td} maps {shown} (host->container) that the params do not expose: the host serves it to "
                   "whatever the instances' groups admit",
                   "run apply (it registers the params' task definition and redeploys the service), or declare "
                   "the port in service.extra_ports")]
