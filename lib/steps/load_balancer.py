"""The internal load balancer: an NLB (TCP, fixed host ports or IP targets) or an ALB (HTTP, dynamic host ports or
IP targets, behind a V2 VPC link), its target groups, listeners, and the security groups the runbook creates."""

from __future__ import annotations

from dataclasses import dataclass

from vpclink_runbooks.aws import ec2 as aws_ec2
from vpclink_runbooks.aws import elbv2 as aws_elbv2
from vpclink_runbooks.aws import waits
from vpclink_runbooks.context import Context
from vpclink_runbooks.errors import StepFailed
from vpclink_runbooks.plan import Plan
from vpclink_runbooks.steps.inspect import World

PERMISSIONS = [
    "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:DescribeLoadBalancerAttributes", "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:CreateLoadBalancer",
    "elasticloadbalancing:AddTags", "elasticloadbalancing:SetSubnets",
    "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:CreateTargetGroup",
    "elasticloadbalancing:ModifyTargetGroup", "elasticloadbalancing:CreateListener",
    "elasticloadbalancing:ModifyListener", "elasticloadbalancing:DeleteListener",
    "elasticloadbalancing:DeleteTargetGroup", "elasticloadbalancing:SetSecurityGroups", "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups", "ec2:CreateSecurityGroup", "ec2:CreateTags", "ec2:DescribeSecurityGroupRules",
    "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress",
]
# ECS dynamic host ports land in the Linux ephemeral range; an ALB reaches them there.
EPHEMERAL_RANGE = (32768, 65535)


@dataclass(frozen=True)
class Port:
    """One exposed port: NLB listener -> target group on the instance's fixed host port."""

    listener_port: int
    host_port: int
    container_port: int


def exposed_ports(ctx: Context) -> list[Port]:
    s = ctx.params.service
    # host_port here is the target group's port: the fixed host port, else the container port (IP targets
    # and dynamic host ports register their own port per target).
    ports = [Port(ctx.params.listener_port, ctx.params.target_port, s.container_port)]
    ports += [Port(e.host_port, e.host_port, e.container_port) for e in s.extra_ports if e.expose]
    return ports


def desired_subnets(ctx: Context, world: World) -> list[str]:
    """nlb.subnets, else one subnet per AZ where cluster instances run (the subnet an instance is in)."""
    if ctx.params.nlb.subnets:
        return sorted(ctx.params.nlb.subnets)
    chosen: dict[str, str] = {}
    for inst in sorted(world.instances, key=lambda i: (i["az"], i["subnet_id"] or "")):
        if inst["state"] == "running" and inst["subnet_id"]:
            chosen.setdefault(inst["az"], inst["subnet_id"])
    return sorted(chosen.values())


def find_load_balancer(ctx: Context) -> dict | None:
    """Our load balancer; errors.NotOurs (the step refuses) when one of its name is not tagged as ours."""
    return aws_elbv2.load_balancer(ctx.aws, ctx.names)


def owned_target_groups(ctx: Context) -> list[dict]:
    return aws_elbv2.target_groups(ctx.aws, ctx.names)


def _health_check(ctx: Context) -> dict:
    path = ctx.params.service.health_check_path
    if path or ctx.params.nlb.type == "application":
        # An ALB has no TCP health check; without a path it checks "/" and accepts any non-5xx answer.
        return {"HealthCheckProtocol": "HTTP", "HealthCheckPath": path or "/",
                "Matcher": {"HttpCode": "200-399" if path else "200-499"}}
    return {"HealthCheckProtocol": "TCP"}


def health_check_drift(ctx: Context, tg: dict) -> dict[str, tuple]:
    """The target group's health-check port, protocol and path that differ from what the runbook sets:
    {key: (current, desired)}. The check goes to the traffic port: the port each target is registered on."""
    desired = dict(_health_check(ctx), HealthCheckPort="traffic-port")
    return {k: (tg.get(k), v) for k, v in desired.items() if k != "Matcher" and tg.get(k) != v}


def _protocol(ctx: Context) -> str:
    return "HTTP" if ctx.params.nlb.type == "application" else "TCP"


def _target_type(ctx: Context) -> str:
    return "ip" if ctx.params.awsvpc else "instance"


def _lb_label(ctx: Context) -> str:
    return f"{'ALB' if ctx.params.nlb.type == 'application' else 'NLB'} {ctx.names.nlb}"


# ---- security groups the runbook creates (V2 link, ALB, awsvpc tasks) ------------------------------------

def find_security_group(ctx: Context, name: str) -> dict | None:
    """Our security group of that name in the VPC; errors.NotOurs when one of that name is not tagged as ours."""
    return aws_ec2.security_group(ctx.aws, ctx.names, ctx.params.vpc_id, name)


def ensure_security_group(ctx: Context, plan: Plan, name: str, purpose: str) -> str | None:
    """The id of our security group `name` (created, tagged, when missing); None in plan mode before it exists."""
    group = find_security_group(ctx, name)
    if group is not None:
        plan.add(f"security group {name}", "none", group["GroupId"], name, "exists")
        return group["GroupId"]
    if plan.add(f"security group {name}", "create", None, f"in {ctx.params.vpc_id}, tagged", purpose):
        return ctx.aws.ec2.create_security_group(
            GroupName=name, Description=f"{ctx.names.base}: {purpose}"[:255], VpcId=ctx.params.vpc_id,
            TagSpecifications=[{"ResourceType": "security-group", "Tags": [*ctx.names.tag_list(),
                                                                           {"Key": "Name", "Value": name}]}],
        )["GroupId"]
    return None


def rule_source(rule: dict) -> str | None:
    return (rule.get("ReferencedGroupInfo") or {}).get("GroupId") or rule.get("CidrIpv4")


def ensure_ingress(ctx: Context, plan: Plan, group_id: str | None, label: str,
                   wanted: set[tuple[int, int, str]], why: str) -> None:
    """Exactly the ingress rules `wanted` ((from, to, source CIDR or sg-id)) among the rules we tagged in the group."""
    existing: dict[tuple[int, int, str], dict] = {}
    if group_id:
        existing = {(r["FromPort"], r["ToPort"], rule_source(r)): r
                    for r in aws_ec2.owned_rules(ctx.aws, ctx.names, group_id)}
    where = group_id or label

    def text(key: tuple[int, int, str]) -> str:
        ports = f"{key[0]}" if key[0] == key[1] else f"{key[0]}-{key[1]}"
        return f"{where} ingress tcp:{ports} from {key[2]}"

    for key in sorted(wanted - set(existing)):
        if plan.add(text(key), "create", None, "allow", why) and group_id:
            source = ({"UserIdGroupPairs": [{"GroupId": key[2], "Description": f"{ctx.names.base} {label}"}]}
                      if key[2].startswith("sg-") else
                      {"IpRanges": [{"CidrIp": key[2], "Description": f"{ctx.names.base} {label}"}]})
            ctx.aws.ec2.authorize_security_group_ingress(
                GroupId=group_id,
                IpPermissions=[{"IpProtocol": "tcp", "FromPort": key[0], "ToPort": key[1], **source}],
                TagSpecifications=[{"ResourceType": "security-group-rule", "Tags": ctx.names.tag_list()}])
    for key in sorted(set(existing) & wanted):
        plan.add(text(key), "none", "allow", "allow", "exists")
    stale = [existing[k] for k in sorted(set(existing) - wanted)]
    for rule in stale:
        plan.add(text((rule["FromPort"], rule["ToPort"], rule_source(rule))), "delete", "allow", None,
                 "no longer needed by params")
    if stale and plan.apply and group_id:
        ctx.aws.ec2.revoke_security_group_ingress(GroupId=group_id,
                                                  SecurityGroupRuleIds=[r["SecurityGroupRuleId"] for r in stale])


def link_security_group(ctx: Context, plan: Plan) -> str | None:
    return ensure_security_group(ctx, plan, ctx.names.link_security_group,
                                 "the V2 VPC link's network interfaces send API Gateway traffic from this group")


def _ensure_alb_security_group(ctx: Context, plan: Plan) -> str | None:
    """The ALB's group admits the listener port from the V2 link's group only."""
    link_group = link_security_group(ctx, plan)
    group_id = ensure_security_group(ctx, plan, ctx.names.alb_security_group,
                                     "the internal ALB accepts the listener port from the VPC link only")
    wanted = {(p.listener_port, p.listener_port, link_group or "<VPC link security group>")
              for p in exposed_ports(ctx)}
    ensure_ingress(ctx, plan, group_id, "listener from the VPC link", wanted,
                   "only the V2 VPC link reaches the ALB")
    return group_id


NLB_GROUP_PLACEHOLDER = "<NLB security group>"


def nlb_group_wanted(ctx: Context, lb: dict | None) -> bool:
    """Whether the NLB has (or, created now, gets) its own security group: nlb.security_group on a network load
    balancer, and, for one that exists, that it was created with groups (AWS attaches them only at creation)."""
    if ctx.params.nlb.type != "network" or not ctx.params.nlb.security_group:
        return False
    return lb is None or bool(lb.get("SecurityGroups"))


def nlb_security_group(ctx: Context, lb: dict | None = None) -> str | None:
    """The id of the NLB's own group that the instances (or awsvpc tasks) admit traffic from: our group when the
    NLB is in it, the placeholder in plan mode before either exists; None when the NLB has no group (CIDR rules)."""
    if ctx.params.nlb.type != "network":
        return None
    lb = lb if lb is not None else find_load_balancer(ctx)
    attached = set((lb or {}).get("SecurityGroups") or [])
    group = find_security_group(ctx, ctx.names.nlb_security_group) if (attached or lb is None) else None
    if group is not None and (lb is None or group["GroupId"] in attached):
        return group["GroupId"]
    if lb is None and ctx.params.nlb.security_group:
        return NLB_GROUP_PLACEHOLDER
    return None


def _ensure_nlb_security_group(ctx: Context, plan: Plan, lb: dict | None) -> str | None:
    """The NLB's own group. V2 link: it admits the listener ports from the link's group (the link's interfaces
    send from it, not over PrivateLink). V1 link: no inbound rule; the link reaches the NLB over PrivateLink and
    the runbook turns inbound-rule evaluation for PrivateLink traffic off (see _ensure_privatelink_setting)."""
    if not nlb_group_wanted(ctx, lb):
        if ctx.params.nlb.type == "network" and ctx.params.nlb.security_group and lb is not None:
            plan.add(f"NLB {ctx.names.nlb} security group", "none", "none (created without one)", "none",
                     "AWS attaches security groups to an NLB only when it is created, so this NLB keeps admitting "
                     "traffic by the NLB subnets' CIDRs; to use a group, `runbook destroy` and apply again (the "
                     "NLB, its VPC link and the API's integration are recreated; expect a few minutes without "
                     "service), or set nlb.security_group: false to accept today's shape")
        return None
    group_id = ensure_security_group(ctx, plan, ctx.names.nlb_security_group,
                                     "the internal NLB's own group; the instances admit traffic only from it")
    if ctx.params.vpc_link.version == 2:
        link_group = link_security_group(ctx, plan)
        wanted = {(p.listener_port, p.listener_port, link_group or "<VPC link security group>")
                  for p in exposed_ports(ctx)}
        ensure_ingress(ctx, plan, group_id, "listener from the VPC link", wanted,
                       "only the V2 VPC link's interfaces reach the NLB")
    else:
        ensure_ingress(ctx, plan, group_id, "NLB", set(), "a V1 link arrives over PrivateLink, not by a rule")
    return group_id


def _ensure_privatelink_setting(ctx: Context, lb: dict | None, group_id: str | None, plan: Plan) -> None:
    """V1 link to an NLB with a group: EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic off. With it on (AWS's
    default) the NLB's inbound rules judge the link's PrivateLink traffic, and without a rule for the NLB's own
    addresses every request times out; off admits the link with no inbound rule at all, so nothing else in the
    VPC reaches the NLB."""
    if group_id is None or ctx.params.vpc_link.version != 1:
        return
    current = (lb or {}).get("EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic") if lb else None
    label = "NLB inbound rules on PrivateLink traffic"
    if current == "off":
        plan.add(label, "none", "off", "off", "already off")
        return
    if plan.add(label, "update" if current else "create", current or "on (AWS default)", "off",
                "the V1 VPC link reaches the NLB over PrivateLink; off admits it without an inbound rule, so the "
                "NLB's group admits nothing else") and lb is not None:
        groups = sorted(set(lb.get("SecurityGroups") or []) | ({group_id} if group_id.startswith("sg-") else set()))
        ctx.aws.elbv2.set_security_groups(LoadBalancerArn=lb["LoadBalancerArn"], SecurityGroups=groups,
                                          EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic="off")


def _ensure_load_balancer(ctx: Context, world: World, plan: Plan, alb_group: str | None = None,
                          nlb_group: str | None = None, lb: dict | None = None) -> dict | None:
    aws, names = ctx.aws, ctx.names
    subnets = desired_subnets(ctx, world)
    kind = ctx.params.nlb.type
    label = _lb_label(ctx)
    if lb is None:
        why = ("a V2 VPC link reaches an internal ALB, which gives each task a dynamic host port or IP"
               if kind == "application" else
               "the VPC link needs an internal NLB in the AZs where the cluster runs")
        if plan.add(label, "create", None, f"internal {kind}, subnets {subnets}", why):
            group = alb_group if kind == "application" else nlb_group
            extra = {"SecurityGroups": [group]} if group else {}
            lb = aws.elbv2.create_load_balancer(Name=names.nlb, Subnets=subnets, Scheme="internal", Type=kind,
                                                IpAddressType="ipv4", Tags=names.tag_list(),
                                                **extra)["LoadBalancers"][0]
        return lb
    attached = lb.get("SecurityGroups") or []
    if nlb_group and nlb_group.startswith("sg-") and attached and nlb_group not in attached:
        groups = sorted({*attached, nlb_group})
        if plan.add(f"{label} security groups", "update", attached, groups,
                    "the NLB must be in its own group, which the instances admit"):
            v1 = ctx.params.vpc_link.version == 1
            off = {"EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic": "off"} if v1 else {}
            aws.elbv2.set_security_groups(LoadBalancerArn=lb["LoadBalancerArn"], SecurityGroups=groups, **off)
            lb = dict(lb, SecurityGroups=groups, **off)
    current = sorted(az["SubnetId"] for az in lb.get("AvailabilityZones", []))
    if lb["Scheme"] != "internal" or lb["Type"] != kind:
        raise StepFailed(f"{names.nlb} is {lb['Scheme']} {lb['Type']}; it must be an internal {kind} load "
                         "balancer and these cannot change: destroy and apply again")
    missing = sorted(set(subnets) - set(current))
    if missing:
        if plan.add(f"{label} subnets", "update", current, sorted(set(current) | set(subnets)),
                    "an AZ with cluster instances has no load balancer subnet; its targets would be unused"):
            aws.elbv2.set_subnets(LoadBalancerArn=lb["LoadBalancerArn"], Subnets=sorted(set(current) | set(subnets)))
    else:
        plan.add(label, "none", f"{lb['State']['Code']}, subnets {current}", f"internal {kind}", "exists")
    if kind == "application" and alb_group and alb_group not in (lb.get("SecurityGroups") or []):
        if plan.add(f"{label} security groups", "update", lb.get("SecurityGroups"), [alb_group],
                    "the ALB must be in the group that admits only the VPC link"):
            aws.elbv2.set_security_groups(LoadBalancerArn=lb["LoadBalancerArn"], SecurityGroups=[alb_group])
    return lb


def _ensure_cross_zone(ctx: Context, lb: dict | None, plan: Plan) -> None:
    if ctx.params.nlb.type == "application":
        plan.add("cross-zone load balancing", "none", "always on for an ALB", "on", "nothing to set")
        return
    current = None
    if lb is not None and "LoadBalancerArn" in lb:
        attrs = ctx.aws.elbv2.describe_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]
        current = next((a["Value"] for a in attrs if a["Key"] == "load_balancing.cross_zone.enabled"), "false")
    if current == "true":
        plan.add("NLB cross-zone load balancing", "none", "on", "on", "already on")
    elif plan.add("NLB cross-zone load balancing", "update" if current else "create", current or "-", "on",
                  "an AZ without a healthy target would otherwise return errors (intermittent 500/504)"):
        ctx.aws.elbv2.modify_load_balancer_attributes(
            LoadBalancerArn=lb["LoadBalancerArn"],
            Attributes=[{"Key": "load_balancing.cross_zone.enabled", "Value": "true"}])


def _ensure_target_groups(ctx: Context, plan: Plan) -> dict[int, dict]:
    aws, names = ctx.aws, ctx.names
    existing = {tg["TargetGroupName"]: tg for tg in owned_target_groups(ctx)}
    health = _health_check(ctx)
    protocol, target_type = _protocol(ctx), _target_type(ctx)
    why = ("awsvpc tasks register their own IP and the container port" if ctx.params.awsvpc else
           "ECS registers each task's instance and dynamic host port" if ctx.params.dynamic_host_ports else
           "NLB targets are instances on the fixed host port")
    groups: dict[int, dict] = {}
    for port in exposed_ports(ctx):
        name = names.target_group(port.host_port)
        tg = existing.get(name)
        if tg is None:
            if plan.add(f"target group {name}", "create", None, f"{protocol} :{port.host_port}, {target_type} "
                        f"targets, {health['HealthCheckProtocol']} health check", why):
                tg = aws.elbv2.create_target_group(
                    Name=name, Protocol=protocol, Port=port.host_port, VpcId=ctx.params.vpc_id,
                    TargetType=target_type, HealthCheckPort="traffic-port", Tags=names.tag_list(),
                    **health)["TargetGroups"][0]
        else:
            drift = health_check_drift(ctx, tg)
            if drift:
                if plan.add(f"target group {name} health check", "update",
                            {k: cur for k, (cur, _) in drift.items()}, {k: want for k, (_, want) in drift.items()},
                            "health check differs from what the runbook sets"):
                    aws.elbv2.modify_target_group(TargetGroupArn=tg["TargetGroupArn"], HealthCheckPort="traffic-port",
                                                  **health)
            else:
                plan.add(f"target group {name}", "none", f"{tg['Protocol']} :{tg['Port']}",
                         f"{protocol} :{port.host_port}", "exists")
        if tg is not None:
            groups[port.host_port] = tg
    return groups


def _ensure_listeners(ctx: Context, lb: dict | None, groups: dict[int, dict], plan: Plan) -> None:
    aws = ctx.aws
    listeners = []
    if lb is not None and "LoadBalancerArn" in lb:
        listeners = aws_elbv2.listeners(aws, lb["LoadBalancerArn"])
    by_port = {lst["Port"]: lst for lst in listeners}
    wanted = {p.listener_port: p for p in exposed_ports(ctx)}
    protocol = _protocol(ctx)
    for listener_port, port in sorted(wanted.items()):
        tg = groups.get(port.host_port)
        tg_arn = tg["TargetGroupArn"] if tg else None
        tg_name = ctx.names.target_group(port.host_port)
        current = by_port.get(listener_port)
        forwards = [a.get("TargetGroupArn") for a in (current or {}).get("DefaultActions", [])]
        action = [{"Type": "forward", "TargetGroupArn": tg_arn}]
        if current is None:
            if plan.add(f"listener {protocol} :{listener_port}", "create", None, f"forward to {tg_name}",
                        "API Gateway reaches the service through this port"):
                aws.elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol=protocol,
                                          Port=listener_port,
                                          DefaultActions=action, Tags=ctx.names.tag_list())
        elif tg_arn is None or forwards != [tg_arn]:
            if plan.add(f"listener {protocol} :{listener_port}", "update", forwards, f"forward to {tg_name}",
                        "the listener must forward to the target group on the current host port"):
                aws.elbv2.modify_listener(ListenerArn=current["ListenerArn"], DefaultActions=action)
        else:
            plan.add(f"listener {protocol} :{listener_port}", "none", f"forward to {tg_name}", f"forward to {tg_name}",
                     "exists")
    for port, listener in sorted(by_port.items()):
        if port not in wanted:
            if plan.add(f"listener {listener['Protocol']} :{port}", "delete", "exists", None,
                        "no longer in params (port changed)"):
                aws.elbv2.delete_listener(ListenerArn=listener["ListenerArn"])


def converge(ctx: Context, world: World) -> Plan:
    """Plan (and in apply mode make) the NLB, cross-zone, target groups and listeners."""
    plan = Plan(apply=ctx.apply)
    alb_group = nlb_group = None
    existing = find_load_balancer(ctx)
    if ctx.params.nlb.type == "application":
        alb_group = _ensure_alb_security_group(ctx, plan)
    else:
        if ctx.params.vpc_link.version == 2:
            link_security_group(ctx, plan)
        nlb_group = _ensure_nlb_security_group(ctx, plan, existing)
    lb = _ensure_load_balancer(ctx, world, plan, alb_group, nlb_group, existing)
    _ensure_privatelink_setting(ctx, lb, nlb_group, plan)
    _ensure_cross_zone(ctx, lb, plan)
    groups = _ensure_target_groups(ctx, plan)
    _ensure_listeners(ctx, lb, groups, plan)
    return plan


def wait_active(ctx: Context) -> str:
    lb = find_load_balancer(ctx)
    if lb is None:
        return "no NLB yet (plan mode): nothing to wait for"
    return waits.waited(ctx.aws.elbv2, "load_balancer_available", f"{_lb_label(ctx)} active",
                        f"{_lb_label(ctx)} is active ({lb['DNSName']})", LoadBalancerArns=[lb["LoadBalancerArn"]])


def remove_stale_target_groups(ctx: Context) -> Plan:
    """Delete our target groups for host ports no longer in params (after the service moved off them)."""
    plan = Plan(apply=ctx.apply)
    wanted = {ctx.names.target_group(p.host_port) for p in exposed_ports(ctx)}
    for tg in owned_target_groups(ctx):
        if tg["TargetGroupName"] in wanted:
            continue
        if tg.get("LoadBalancerArns"):
            plan.add(f"target group {tg['TargetGroupName']}", "none", "still behind a listener", "deleted later",
                     "a listener still forwards to it")
            continue
        if plan.add(f"target group {tg['TargetGroupName']}", "delete", f"TCP :{tg['Port']}", None,
                    "the host port changed; the service now uses the new target group"):
            ctx.aws.elbv2.delete_target_group(TargetGroupArn=tg["TargetGroupArn"])
    return plan
