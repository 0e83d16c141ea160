"""Security-group admission as VPC networking decides it: may a load balancer's nodes reach a target's port?

EC2
- moto stores security-group rules but nothing evaluates them; here a target's groups (an instance's groups,
  or for an IP target the groups of the network interface holding that address) are checked against the load
  balancer's node addresses (the private IPs of its "ELB net/..." interfaces, one per subnet) and its own
  security groups, rule by rule: protocol tcp / 6 / -1, port range, IPv4 CIDR or source group.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from .base import _ec2

TCP = ("tcp", "6", "-1")


def cidr_contains(cidr: str, address: str) -> bool:
    """Whether IPv4/IPv6 `cidr` contains `address` (an address or a whole CIDR block; False for malformed input
    or mixed families)."""
    try:
        net = ipaddress.ip_network(cidr, strict=False)
        if "/" in address:
            inner = ipaddress.ip_network(address, strict=False)
            return inner.version == net.version and inner.subnet_of(net)  # type: ignore[arg-type]
        return ipaddress.ip_address(address) in net
    except ValueError:
        return False


def rule_ports(rule: Any, port: int) -> bool:
    """Whether a rule's protocol and port range cover TCP `port`."""
    proto = str(rule.ip_protocol or "")
    if proto not in TCP:
        return False
    if proto == "-1":
        return True
    low = 0 if rule.from_port is None else int(rule.from_port)
    high = 65535 if rule.to_port is None else int(rule.to_port)
    return low <= port <= high


def _cidrs(rule: Any) -> list[str]:
    ranges = rule.ip_range if isinstance(rule.ip_range, list) else [rule.ip_range]
    out = []
    for r in ranges:
        if r:
            out += [c for c in (r.get("CidrIp"), r.get("CidrIpv6")) if c]
    return out


def group_admits(ec2: Any, group_id: str, port: int, sources: set[str], addresses: list[str]) -> bool:
    """Whether group `group_id` admits TCP `port` from a member of `sources` or from every one of `addresses`
    (each address may be admitted by a different rule)."""
    group = ec2.get_security_group_from_id(group_id)
    if group is None:
        return False
    rules = [r for r in getattr(group, "ingress_rules", []) if rule_ports(r, port)]
    if any((r.source_group or {}).get("GroupId") in sources for r in rules):
        return True
    if not addresses:
        return False
    return all(any(cidr_contains(c, a) for r in rules for c in _cidrs(r)) for a in addresses)


def eni_for_ip(ec2: Any, ip: str) -> Any:
    """The network interface holding private address `ip`, or None."""
    for eni in ec2.enis.values():
        if eni.private_ip_address == ip:
            return eni
    return None


def target_groups(account_id: str, region: str, target_id: str) -> list[str] | None:
    """Security group ids guarding a target (instance id or IP); None when the target is unknown to EC2."""
    ec2 = _ec2(account_id, region)
    if target_id.startswith("i-"):
        inst = ec2.get_instance_by_id(target_id)
        if inst is None:
            return None
        ids = {g.id for g in getattr(inst, "security_groups", []) or []}
        for nic in getattr(inst, "nics", {}).values():
            ids |= {g.id for g in getattr(nic, "group_set", []) or []}
        return sorted(ids)
    eni = eni_for_ip(ec2, target_id)
    if eni is None:
        return None
    return sorted({g.id for g in eni.group_set})


def lb_node_ips(account_id: str, region: str, lb: Any) -> list[str]:
    """Private addresses of the load balancer's nodes (its network interfaces, one per subnet)."""
    ec2 = _ec2(account_id, region)
    ids = getattr(lb, "_sbx_enis", None)
    if ids is None:
        lb_id = lb.arn.split("/")[-1]
        enis = [e for e in ec2.enis.values() if (e.description or "").endswith(f"/{lb.name}/{lb_id}")]
    else:
        enis = [ec2.enis[i] for i in ids if i in ec2.enis]
    return [e.private_ip_address for e in enis if e.private_ip_address]


def lb_admitted(account_id: str, region: str, lb: Any, target_id: str, port: int) -> str | None:
    """None when the target's groups admit TCP `port` from the load balancer (its node addresses, or its own
    groups when it has any); else a short reason naming the groups."""
    ec2 = _ec2(account_id, region)
    groups = target_groups(account_id, region, target_id)
    if groups is None:
        return None  # an IP outside the VPC's interfaces: no group of ours guards it
    ips = lb_node_ips(account_id, region, lb)
    if not ips:
        # No node interfaces emulated (an ALB): its nodes may take any address of its subnets.
        ips = [s.cidr_block for s in lb.subnets]
    sources = set(lb.security_groups or [])
    if not sources and lb.type == "application":
        # An ALB created without groups gets the VPC's default group (AWS); moto records none.
        default = ec2.get_security_group_from_name("default", vpc_id=lb.vpc_id)
        sources = {default.id} if default is not None else set()
    if any(group_admits(ec2, g, port, sources, ips) for g in groups):
        return None
    names = ", ".join(groups) or "(no security group)"
    return f"{names} admits no TCP {port} from the load balancer ({', '.join(ips) or 'no node address'})"
