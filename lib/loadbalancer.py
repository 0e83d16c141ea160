"""The internal Network Load Balancer: NLB, cross-zone, TCP target groups on fixed host ports, listeners."""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from . import waits
from .context import Context
from .errors import StepFailed
from .inspect_vpc import World
from .plan import Plan

PERMISSIONS = [
    "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTags",
    "elasticloadbalancing:DescribeLoadBalancerAttributes", "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:CreateLoadBalancer",
    "elasticloadbalancing:AddTags", "elasticloadbalancing:SetSubnets",
    "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:CreateTargetGroup",
    "elasticloadbalancing:ModifyTargetGroup", "elasticloadbalancing:CreateListener",
    "elasticloadbalancing:ModifyListener", "elasticloadbalancing:DeleteListener",
    "elasticloadbalancing:DeleteTargetGroup", "ec2:DescribeSubnets",
]


@dataclass(frozen=True)
class Port:
    """One exposed port: NLB listener -> target group on the instance's fixed host port."""

    listener_port: int
    host_port: int
    container_port: int


def exposed_ports(ctx: Context) -> list[Port]:
    s = ctx.params.service
    ports = [Port(ctx.params.listener_port, s.host_port, s.container_port)]
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
    try:
        lbs = ctx.aws.elbv2.describe_load_balancers(Names=[ctx.names.nlb])["LoadBalancers"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "LoadBalancerNotFound":
            raise
        return None
    lb = lbs[0]
    tags = ctx.aws.elbv2.describe_tags(ResourceArns=[lb["LoadBalancerArn"]])["TagDescriptions"][0]["Tags"]
    if not ctx.names.owns(tags):
        raise StepFailed(f"a load balancer named {ctx.names.nlb} exists but is not tagged as this runbook's "
                         f"({lb['LoadBalancerArn']}); rename the environment or remove it")
    return lb


def owned_target_groups(ctx: Context) -> list[dict]:
    """Target groups this environment's runbook created, found by name prefix and confirmed by tags."""
    groups = [tg for page in ctx.aws.elbv2.get_paginator("describe_target_groups").paginate()
              for tg in page["TargetGroups"] if tg["TargetGroupName"].startswith(ctx.names.base + "-")]
    if not groups:
        return []
    owned = []
    for start in range(0, len(groups), 20):
        chunk = groups[start:start + 20]
        described = ctx.aws.elbv2.describe_tags(ResourceArns=[g["TargetGroupArn"] for g in chunk])["TagDescriptions"]
        tags = {d["ResourceArn"]: d["Tags"] for d in described}
        owned += [g for g in chunk if ctx.names.owns(tags.get(g["TargetGroupArn"]))]
    return owned


def _health_check(ctx: Context) -> dict:
    path = ctx.params.service.health_check_path
    if path:
        return {"HealthCheckProtocol": "HTTP", "HealthCheckPath": path, "Matcher": {"HttpCode": "200-399"}}
    return {"HealthCheckProtocol": "TCP"}


def _ensure_load_balancer(ctx: Context, world: World, plan: Plan) -> dict | None:
    aws, names = ctx.aws, ctx.names
    subnets = desired_subnets(ctx, world)
    lb = find_load_balancer(ctx)
    if lb is None:
        if plan.add(f"NLB {names.nlb}", "create", None, f"internal network, subnets {subnets}",
                    "the VPC link needs an internal NLB in the AZs where the cluster runs"):
            lb = aws.elbv2.create_load_balancer(Name=names.nlb, Subnets=subnets, Scheme="internal", Type="network",
                                                IpAddressType="ipv4", Tags=names.tag_list())["LoadBalancers"][0]
        return lb
    current = sorted(az["SubnetId"] for az in lb.get("AvailabilityZones", []))
    if lb["Scheme"] != "internal" or lb["Type"] != "network":
        raise StepFailed(f"{names.nlb} is {lb['Scheme']} {lb['Type']}; it must be an internal network load "
                         "balancer and these cannot change: destroy and apply again")
    missing = sorted(set(subnets) - set(current))
    if missing:
        if plan.add(f"NLB {names.nlb} subnets", "update", current, sorted(set(current) | set(subnets)),
                    "an AZ with cluster instances has no NLB subnet; its targets would be unused"):
            aws.elbv2.set_subnets(LoadBalancerArn=lb["LoadBalancerArn"], Subnets=sorted(set(current) | set(subnets)))
    else:
        plan.add(f"NLB {names.nlb}", "none", f"{lb['State']['Code']}, subnets {current}", "internal network",
                 "exists")
    return lb


def _ensure_cross_zone(ctx: Context, lb: dict | None, plan: Plan) -> None:
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
    groups: dict[int, dict] = {}
    for port in exposed_ports(ctx):
        name = names.target_group(port.host_port)
        tg = existing.get(name)
        if tg is None:
            if plan.add(f"target group {name}", "create", None, f"TCP :{port.host_port}, instance targets, "
                        f"{health['HealthCheckProtocol']} health check", "NLB targets are instances on the fixed "
                        "host port"):
                tg = aws.elbv2.create_target_group(
                    Name=name, Protocol="TCP", Port=port.host_port, VpcId=ctx.params.vpc_id, TargetType="instance",
                    HealthCheckPort="traffic-port", Tags=names.tag_list(), **health)["TargetGroups"][0]
        else:
            drift = {k: v for k, v in health.items() if k != "Matcher" and tg.get(k) != v}
            if drift:
                if plan.add(f"target group {name} health check", "update",
                            {k: tg.get(k) for k in drift}, drift, "health check differs from params"):
                    aws.elbv2.modify_target_group(TargetGroupArn=tg["TargetGroupArn"], **health)
            else:
                plan.add(f"target group {name}", "none", f"TCP :{tg['Port']}", f"TCP :{port.host_port}", "exists")
        if tg is not None:
            groups[port.host_port] = tg
    return groups


def _ensure_listeners(ctx: Context, lb: dict | None, groups: dict[int, dict], plan: Plan) -> None:
    aws = ctx.aws
    listeners = []
    if lb is not None and "LoadBalancerArn" in lb:
        listeners = aws.elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    by_port = {lst["Port"]: lst for lst in listeners}
    wanted = {p.listener_port: p for p in exposed_ports(ctx)}
    for listener_port, port in sorted(wanted.items()):
        tg = groups.get(port.host_port)
        tg_arn = tg["TargetGroupArn"] if tg else None
        tg_name = ctx.names.target_group(port.host_port)
        current = by_port.get(listener_port)
        forwards = [a.get("TargetGroupArn") for a in (current or {}).get("DefaultActions", [])]
        action = [{"Type": "forward", "TargetGroupArn": tg_arn}]
        if current is None:
            if plan.add(f"listener TCP :{listener_port}", "create", None, f"forward to {tg_name}",
                        "API Gateway reaches the service through this port"):
                aws.elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="TCP", Port=listener_port,
                                          DefaultActions=action, Tags=ctx.names.tag_list())
        elif tg_arn is None or forwards != [tg_arn]:
            if plan.add(f"listener TCP :{listener_port}", "update", forwards, f"forward to {tg_name}",
                        "the listener must forward to the target group on the current host port"):
                aws.elbv2.modify_listener(ListenerArn=current["ListenerArn"], DefaultActions=action)
        else:
            plan.add(f"listener TCP :{listener_port}", "none", f"forward to {tg_name}", f"forward to {tg_name}",
                     "exists")
    for port, listener in sorted(by_port.items()):
        if port not in wanted:
            if plan.add(f"listener TCP :{port}", "delete", "exists", None, "no longer in params (port changed)"):
                aws.elbv2.delete_listener(ListenerArn=listener["ListenerArn"])


def converge(ctx: Context, world: World) -> Plan:
    """Plan (and in apply mode make) the NLB, cross-zone, target groups and listeners."""
    plan = Plan(apply=ctx.apply)
    lb = _ensure_load_balancer(ctx, world, plan)
    _ensure_cross_zone(ctx, lb, plan)
    groups = _ensure_target_groups(ctx, plan)
    _ensure_listeners(ctx, lb, groups, plan)
    return plan


def wait_active(ctx: Context) -> str:
    lb = find_load_balancer(ctx)
    if lb is None:
        return "no NLB yet (plan mode): nothing to wait for"
    seconds = waits.wait(ctx.aws.elbv2, "load_balancer_available", f"NLB {ctx.names.nlb} active",
                         LoadBalancerArns=[lb["LoadBalancerArn"]])
    return f"NLB {ctx.names.nlb} is active ({lb['DNSName']}) after {seconds:.1f}s"


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
