"""Shared facts: pure helpers the checks agree on."""

from __future__ import annotations

import ipaddress
from types import SimpleNamespace

from vpclink_runbooks.checks.inventory import Inventory
from vpclink_runbooks.steps.load_balancer import exposed_ports

# -- shared facts (pure helpers the checks agree on) --

def _primary_tg(inv: Inventory) -> dict | None:
    name = inv.names.target_group(inv.params.target_port)
    return next((t for t in inv.target_groups if t["TargetGroupName"] == name), None)


def _exposed(inv: Inventory):
    return exposed_ports(SimpleNamespace(params=inv.params))


def _main_mapping(inv: Inventory) -> dict | None:
    td = inv.task_definition or {}
    s = inv.params.service
    mappings = [m for c in td.get("containerDefinitions", []) for m in c.get("portMappings", [])]
    return next((m for m in mappings if m["containerPort"] == s.container_port), None)


def _expected_host_port(p) -> int:
    return p.service.host_port if p.fixed_host_port else 0 if p.dynamic_host_ports else p.service.container_port


def _task_host_port_wrong(inv: Inventory) -> bool:
    main = _main_mapping(inv)
    return main is not None and (main.get("hostPort") or 0) != _expected_host_port(inv.params)


def _instance_state(inv: Inventory, instance_id: str) -> str:
    if inv.params.awsvpc:
        return "running"  # an IP target: no instance of its own to be stopped (a task ENI)
    return inv.instances.get(instance_id, {}).get("State", {}).get("Name", "unknown")


def _az(inv: Inventory, instance_id: str) -> str:
    if inv.params.awsvpc:
        return next((t["az"] for t in inv.tasks if t.get("ip") == instance_id and t.get("az")), "?")
    return inv.instances.get(instance_id, {}).get("Placement", {}).get("AvailabilityZone", "?")


def _nlb_azs(inv: Inventory) -> set[str]:
    return {az["ZoneName"] for az in (inv.lb or {}).get("AvailabilityZones", [])}


def _admits(rule: dict, port: int, cidr: str, groups: set[str] = frozenset()) -> bool:
    """Does an inbound rule let tcp `port` in from `cidr` (or from one of `groups`)?"""
    protocol = rule.get("IpProtocol")
    if protocol not in ("tcp", "-1"):
        return False
    if protocol == "tcp" and not rule.get("FromPort", -1) <= port <= rule.get("ToPort", -1):
        return False
    referenced = (rule.get("ReferencedGroupInfo") or {}).get("GroupId")
    if referenced:
        return referenced in groups
    source = rule.get("CidrIpv4")
    if not source:
        return False
    try:
        return ipaddress.ip_network(cidr).subnet_of(ipaddress.ip_network(source))
    except ValueError:
        return False


def _nlb_cidrs(inv: Inventory) -> list[str]:
    return sorted(sub["CidrBlock"] for sub in inv.subnets.values())


def _unadmitted(inv: Inventory) -> dict[str, list[str]]:
    """Running cluster instances whose security groups do not let the host port in from every NLB subnet."""
    if not inv.params.fixed_host_port:
        return {}
    port = inv.params.service.host_port
    nlb_groups = set((inv.lb or {}).get("SecurityGroups") or [])
    missing: dict[str, list[str]] = {}
    for instance_id, inst in sorted(inv.instances.items()):
        if inst.get("State", {}).get("Name") != "running":
            continue
        groups = {g["GroupId"] for g in inst.get("SecurityGroups", [])}
        rules = [r for r in inv.all_rules if r["GroupId"] in groups]
        lacking = [c for c in _nlb_cidrs(inv) if not any(_admits(r, port, c, nlb_groups) for r in rules)]
        if lacking:
            missing[instance_id] = lacking
    return missing


def _healthy_azs(inv: Inventory) -> set[str]:
    tg = _primary_tg(inv)
    descs = inv.health.get(tg["TargetGroupArn"], []) if tg else []
    return {_az(inv, d["Target"]["Id"]) for d in descs if d["TargetHealth"]["State"] == "healthy"}


def _running_tasks(inv: Inventory) -> list[dict]:
    return [t for t in inv.tasks if t["last_status"] == "RUNNING" and (t["instance_id"] or t.get("ip"))]


def serving_targets(inv: Inventory) -> set[tuple[str, int | None]]:
    """(target id, port) each running task of ours should be registered as: its IP and the container port
    (awsvpc), else its instance and the host port bound to the container port."""
    port = inv.params.service.container_port
    if inv.params.awsvpc:
        return {(t["ip"], port) for t in _running_tasks(inv) if t.get("ip")}
    return {(t["instance_id"], t["bindings"].get(port)) for t in _running_tasks(inv) if t["instance_id"]}

