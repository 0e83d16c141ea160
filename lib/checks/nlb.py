"""Checks of the load balancer and its listeners."""

from __future__ import annotations

from vpclink_runbooks.checks.facts import (
    _admits,
    _exposed,
    _healthy_azs,
    _nlb_azs,
    _nlb_cidrs,
)
from vpclink_runbooks.checks.inventory import Inventory
from vpclink_runbooks.checks.registry import Result, check

# -- NLB --

@check(id="nlb.exists", hop="nlb", severity="error", repaired_by="nlb",
       remedy="create the load balancer")
@check(id="nlb.state", hop="nlb", severity="error", repaired_by=None,
       remedy="scheme and type cannot change: destroy and apply again")
@check(id="nlb.alb_security_group", hop="nlb", severity="error", repaired_by="nlb",
       remedy="put the ALB in the runbook's group, admitting the listener port from the VPC link's group only")
@check(id="nlb.cross_zone", hop="nlb", severity="error", repaired_by="nlb",
       remedy="turn cross-zone load balancing on, or run a target in each AZ")
@check(id="nlb.security_groups", hop="nlb", severity="error", repaired_by=None,
       remedy="admit the listener port from the NLB subnets, or stop enforcing the groups on PrivateLink traffic")
@check(id="nlb.own_security_group", hop="nlb", severity="error", repaired_by="nlb",
       remedy="put the NLB in the runbook's group (V1 link: PrivateLink inbound rules off; V2: admit the link's group)")
def nlb_active_internal(inv: Inventory) -> list[Result]:
    """The NLB is an active internal network load balancer; cross-zone covers AZs without healthy targets."""
    lb = inv.lb
    if lb is None:
        return [Result("nlb.exists", "nlb", "fail", f"NLB {inv.names.nlb} not found", "create the NLB (repair does)")]
    out = []
    kind = inv.params.nlb.type
    ok = lb["State"]["Code"] == "active" and lb["Scheme"] == "internal" and lb["Type"] == kind
    out.append(Result("nlb.state", "nlb", "pass" if ok else "fail",
                      f"{lb['LoadBalancerName']} {lb['Type']} {lb['Scheme']} {lb['State']['Code']}",
                      "" if ok else f"the load balancer must be an active, internal {kind} load balancer; scheme "
                      "and type cannot change: destroy and apply again"))
    if kind == "application":
        out.append(_alb_security_group(inv, lb))
        return out
    empty = sorted(az for az in _nlb_azs(inv) if az not in _healthy_azs(inv))
    if inv.cross_zone:
        out.append(Result("nlb.cross_zone", "nlb", "pass", "cross-zone load balancing on"))
    elif empty:
        out.append(Result("nlb.cross_zone", "nlb", "fail",
                          f"cross-zone load balancing off and AZ(s) {empty} have no healthy target: requests the "
                          "NLB routes there fail (intermittent 500/504)",
                          "turn cross-zone load balancing on (repair does), or run a target in each AZ"))
    else:
        out.append(Result("nlb.cross_zone", "nlb", "warn", "cross-zone load balancing off",
                          "turn it on so losing one AZ's targets does not fail requests (repair does)"))
    own = _own_security_group(inv, lb)
    if own is not None:
        out.append(own)
    if own is None or own.status == "pass" or inv.params.vpc_link.version == 2:
        out.append(_nlb_security_groups(inv, lb))
    return out


def _own_security_group(inv: Inventory, lb: dict) -> Result | None:
    """nlb.security_group: the NLB is in the runbook's own group; a V1 link's PrivateLink traffic is not judged by
    its inbound rules; a V2 link's group is admitted on the listener ports. None when params do not ask for it."""
    if not inv.params.nlb.security_group:
        return None
    n, attached = inv.names, sorted(lb.get("SecurityGroups") or [])
    if not attached:
        return Result("nlb.own_security_group", "nlb", "warn",
                      f"{lb['LoadBalancerName']} was created without a security group, and AWS attaches one only "
                      "at creation: the instances admit the NLB subnets' CIDRs, so every host in those subnets "
                      "reaches the host port",
                      "to use the NLB's own group, `runbook destroy` and apply again (the NLB, the VPC link and the "
                      "integration are recreated: minutes without service), or set nlb.security_group: false")
    group = inv.groups.get(n.nlb_security_group)
    if group is None or group["GroupId"] not in attached:
        return Result("nlb.own_security_group", "nlb", "fail",
                      f"the NLB is in {attached}, not in the runbook's group {n.nlb_security_group}"
                      + ("" if group else " (missing)"),
                      "add the runbook's group to the NLB (repair does)")
    gid = group["GroupId"]
    if inv.params.vpc_link.version == 1:
        enforced = lb.get("EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic", "on")
        if enforced != "off":
            return Result("nlb.own_security_group", "nlb", "fail",
                          f"{gid} judges PrivateLink traffic by its inbound rules "
                          f"(EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic {enforced}) and has none for the "
                          "VPC link: health checks pass, API requests time out",
                          "turn EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic off (repair does)")
        return Result("nlb.own_security_group", "nlb", "pass",
                      f"the NLB is in {gid}; the V1 link's PrivateLink traffic is admitted (inbound rules not "
                      "enforced on it)")
    link = inv.groups.get(n.link_security_group) or {}
    rules = [r for r in inv.nlb_rules if r.get("GroupId") == gid]
    lacking = [p.listener_port for p in _exposed(inv)
               if not any(_admits(r, p.listener_port, "255.255.255.255/32", {link.get("GroupId")}) for r in rules)]
    if lacking:
        return Result("nlb.own_security_group", "nlb", "fail",
                      f"{gid} does not admit tcp:{lacking} from the VPC link's group "
                      f"{link.get('GroupId', n.link_security_group)}: API requests time out",
                      f"add ingress tcp:{lacking} from the link's group to {gid} (repair does)")
    return Result("nlb.own_security_group", "nlb", "pass",
                  f"the NLB is in {gid}, which admits the listener port(s) from the VPC link's group")


def _alb_security_group(inv: Inventory, lb: dict) -> Result:
    """The ALB admits the listener port from the V2 link's security group, and from nowhere wider."""
    n, port = inv.names, inv.params.listener_port
    alb_group, link_group = inv.groups.get(n.alb_security_group), inv.groups.get(n.link_security_group)
    if alb_group is None or link_group is None or alb_group["GroupId"] not in (lb.get("SecurityGroups") or []):
        return Result("nlb.alb_security_group", "nlb", "fail",
                      f"the ALB's groups are {lb.get('SecurityGroups')}; expected {n.alb_security_group} "
                      f"({(alb_group or {}).get('GroupId', 'missing')})",
                      "put the ALB in the runbook's group (repair does)")
    rules = inv.group_rules.get(n.alb_security_group, [])
    if not any(_admits(r, port, "255.255.255.255/32", {link_group["GroupId"]}) for r in rules):
        return Result("nlb.alb_security_group", "nlb", "fail",
                      f"{alb_group['GroupId']} does not admit tcp:{port} from the VPC link's group "
                      f"{link_group['GroupId']}: API requests are dropped at the ALB",
                      f"add ingress tcp:{port} from {link_group['GroupId']} (repair does)")
    wide = [r for r in rules if _admits(r, port, "0.0.0.0/0")]
    if wide:
        return Result("nlb.alb_security_group", "nlb", "fail",
                      f"{alb_group['GroupId']} admits tcp:{port} from 0.0.0.0/0", "remove that rule")
    return Result("nlb.alb_security_group", "nlb", "pass",
                  f"{alb_group['GroupId']} admits tcp:{port} from the VPC link's group {link_group['GroupId']} only")


def _nlb_security_groups(inv: Inventory, lb: dict) -> Result:
    groups = sorted(lb.get("SecurityGroups") or [])
    if not groups:
        return Result("nlb.security_groups", "nlb", "pass",
                      "no security groups on the NLB: traffic from the VPC link is not filtered there")
    if inv.params.vpc_link.version == 2:
        return Result("nlb.security_groups", "nlb", "pass",
                      "a V2 link's traffic comes from its own interfaces, not over PrivateLink")
    # AWS's default when an NLB has security groups is to enforce them on PrivateLink traffic.
    enforced = lb.get("EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic", "on") != "off"
    if not enforced:
        return Result("nlb.security_groups", "nlb", "pass",
                      f"NLB security groups {groups} are not enforced on PrivateLink traffic")
    port = inv.params.listener_port
    lacking = [c for c in _nlb_cidrs(inv) if not any(_admits(r, port, c, set(groups)) for r in inv.nlb_rules)]
    if lacking:
        return Result("nlb.security_groups", "nlb", "fail",
                      f"NLB security groups {groups} enforce inbound rules on PrivateLink traffic but do not admit "
                      f"tcp:{port} from NLB subnet(s) {lacking}, where VPC link traffic comes from: health checks "
                      "pass, API requests are dropped",
                      f"add inbound tcp:{port} from {lacking} to {groups[0]}, or turn "
                      "EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic off (elbv2 set-security-groups)")
    return Result("nlb.security_groups", "nlb", "pass",
                  f"NLB security groups {groups} admit tcp:{port} from the NLB subnets")


# -- listener --

@check(id="listener.exists", hop="listener", severity="error", repaired_by="nlb",
       remedy="create the load balancer first (see nlb.exists)")
@check(id="listener.{port}", hop="listener", severity="error", repaired_by="nlb",
       remedy="create the listener on the port, forwarding to the target group on the task's host port")
def listener_forwards_to_host_port(inv: Inventory) -> list[Result]:
    """Each exposed port has a TCP listener forwarding to the target group on the task's host port."""
    if inv.lb is None:
        return [Result("listener.exists", "listener", "skip", "no NLB to hold listeners (see nlb.exists)")]
    out = []
    for port in _exposed(inv):
        listener = next((li for li in inv.listeners if li["Port"] == port.listener_port), None)
        wanted = inv.names.target_group(port.host_port)
        if listener is None:
            out.append(Result(f"listener.{port.listener_port}", "listener", "fail",
                              f"no listener on port {port.listener_port} (listeners on "
                              f"{sorted(li['Port'] for li in inv.listeners) or 'no port'}); the integration sends "
                              f"requests to :{port.listener_port}",
                              f"create a TCP listener on {port.listener_port} forwarding to {wanted} (repair does)"))
            continue
        arns = [a.get("TargetGroupArn") for a in listener.get("DefaultActions", [])]
        tg = inv.listener_groups.get(arns[0]) if arns and arns[0] else None
        if tg is None or tg["TargetGroupName"] != wanted or tg["Port"] != port.host_port:
            where = f"target group {tg['TargetGroupName']} on port {tg['Port']}" if tg else f"{arns}"
            out.append(Result(f"listener.{port.listener_port}", "listener", "fail",
                              f"listener {port.listener_port} forwards to {where}; the task's hostPort is "
                              f"{port.host_port} (target group {wanted})",
                              f"forward the listener to {wanted} (repair does)"))
        elif listener.get("Protocol") != ("HTTP" if inv.params.nlb.type == "application" else "TCP"):
            out.append(Result(f"listener.{port.listener_port}", "listener", "fail",
                              f"listener {port.listener_port} is {listener.get('Protocol')}",
                              "recreate the listener with the protocol the load balancer type needs (repair does)"))
        else:
            out.append(Result(f"listener.{port.listener_port}", "listener", "pass",
                              f"{listener.get('Protocol')} {port.listener_port} -> {tg['TargetGroupName']} "
                              f":{tg['Port']}"))
    return out

