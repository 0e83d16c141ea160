"""The inventory: everything verify looks at, fetched once (the only AWS reads of checks besides probes)."""

from __future__ import annotations

from dataclasses import dataclass, field

from vpclink_runbooks.aws.missing import ignore_missing
from vpclink_runbooks.aws.session import fresh
from vpclink_runbooks.checks.probes import _probes
from vpclink_runbooks.context import Context
from vpclink_runbooks.steps.api import PROXY_PATH, find_rest_api
from vpclink_runbooks.steps.ecs_service import find_service, owned_rules
from vpclink_runbooks.steps.inspect import World, discover
from vpclink_runbooks.steps.load_balancer import find_load_balancer, find_security_group, owned_target_groups
from vpclink_runbooks.steps.vpc_link import find_link

PERMISSIONS = ["apigateway:GET", "apigateway:POST", "elasticloadbalancing:DescribeLoadBalancers",
               "elasticloadbalancing:DescribeTags", "elasticloadbalancing:DescribeLoadBalancerAttributes",
               "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeTargetGroups",
               "elasticloadbalancing:DescribeTargetHealth", "ecs:DescribeServices", "ecs:DescribeTaskDefinition",
               "ecs:ListTasks", "ecs:DescribeTasks", "ecs:ListContainerInstances",
               "ecs:DescribeContainerInstances", "ec2:DescribeSecurityGroupRules", "ec2:DescribeSubnets",
               "ec2:DescribeInstances", "ec2:DescribeVpcs", "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups"]


@dataclass
class Inventory:
    """Everything verify looks at, fetched once; checks read it and call nothing."""

    params: object
    names: object
    world: World | None = None
    mapping: dict | None = None
    api: dict | None = None
    stage: dict | None = None
    deployment: dict | None = None
    integration: dict | None = None
    link: dict | None = None
    vpc_link_count: int = 0
    lb: dict | None = None
    cross_zone: bool | None = None
    nlb_rules: list[dict] = field(default_factory=list)
    listeners: list[dict] = field(default_factory=list)
    listener_groups: dict[str, dict] = field(default_factory=dict)  # every target group a listener forwards to
    target_groups: list[dict] = field(default_factory=list)
    health: dict[str, list[dict]] = field(default_factory=dict)
    subnets: dict[str, dict] = field(default_factory=dict)
    instances: dict[str, dict] = field(default_factory=dict)
    service: dict | None = None
    task_definition: dict | None = None
    tasks: list[dict] = field(default_factory=list)
    stopped_tasks: list[dict] = field(default_factory=list)  # the service's recently stopped tasks (ECS keeps ~1 h)
    rules: list[dict] = field(default_factory=list)
    all_rules: list[dict] = field(default_factory=list)
    probes: dict[str, dict] = field(default_factory=dict)
    # the security groups the runbook creates on the V2 / ALB / awsvpc paths: name -> group (None: missing)
    groups: dict[str, dict | None] = field(default_factory=dict)
    group_rules: dict[str, list[dict]] = field(default_factory=dict)


def _inbound_rules(aws, group_ids: list[str]) -> list[dict]:
    if not group_ids:
        return []
    return [r for page in aws.ec2.get_paginator("describe_security_group_rules").paginate(
        Filters=[{"Name": "group-id", "Values": group_ids}]) for r in page["SecurityGroupRules"] if not r["IsEgress"]]


def fetch(ctx: Context, *, probe: bool = True) -> Inventory:
    """Read the live chain once: the API, the VPC link, the load balancer, the targets, the service, the groups.

    In a runner's run, what the run's earlier notebooks read and nothing changed since comes from the run
    inventory; what time alone changes (health, tasks, statuses) is read from AWS."""
    with fresh(ctx.aws):
        return _fetch(ctx, probe)


def _fetch(ctx: Context, probe: bool) -> Inventory:
    inv = Inventory(params=ctx.params, names=ctx.names)
    inv.world = discover(ctx)
    inv.vpc_link_count = len(inv.world.vpc_links)
    _fetch_api(ctx, inv)
    inv.link = find_link(ctx)
    inv.lb = find_load_balancer(ctx)
    if inv.lb:
        _fetch_load_balancer(ctx, inv)
    _fetch_targets(ctx, inv)
    inv.service = find_service(ctx)
    if inv.service:
        inv.task_definition = ctx.aws.ecs.describe_task_definition(
            taskDefinition=inv.service["taskDefinition"])["taskDefinition"]
        inv.tasks = _tasks(ctx, inv.world)
        inv.stopped_tasks = _tasks(ctx, inv.world, "STOPPED")
    _fetch_groups(ctx, inv)
    if probe:
        inv.probes.update(_probes(ctx, inv))
    return inv


def _fetch_api(ctx: Context, inv: Inventory) -> None:
    """The base path mapping, our API's stage and deployment, and the integration on its proxy resource."""
    gw, a = ctx.aws.apigateway, ctx.params.api
    inv.mapping = ignore_missing(lambda: gw.get_base_path_mapping(domainName=a.domain_name, basePath=a.base_path),
                                 "NotFoundException")
    inv.api = find_rest_api(ctx)
    if not inv.api:
        return
    api_id = inv.api["id"]
    inv.stage = ignore_missing(lambda: gw.get_stage(restApiId=api_id, stageName=a.stage), "NotFoundException")
    if inv.stage and inv.stage.get("deploymentId"):
        inv.deployment = ignore_missing(lambda: gw.get_deployment(restApiId=api_id,
                                        deploymentId=inv.stage["deploymentId"]), "NotFoundException")
    resources = [r for page in gw.get_paginator("get_resources").paginate(restApiId=api_id) for r in page["items"]]
    proxy = next((r for r in resources if r.get("pathPart") == PROXY_PATH), None)
    if proxy:
        inv.integration = ignore_missing(lambda: gw.get_integration(restApiId=api_id, resourceId=proxy["id"],
                                                                    httpMethod="ANY"), "NotFoundException")
        inv.probes["resource_id"] = {"id": proxy["id"]}


def _fetch_load_balancer(ctx: Context, inv: Inventory) -> None:
    """Cross-zone, the listeners and the groups they forward to, the load balancer's subnets and its rules."""
    aws, arn = ctx.aws, inv.lb["LoadBalancerArn"]
    attrs = aws.elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]
    inv.cross_zone = any(a["Key"] == "load_balancing.cross_zone.enabled" and a["Value"] == "true" for a in attrs)
    inv.listeners = aws.elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]
    forwarded = sorted({a["TargetGroupArn"] for li in inv.listeners for a in li.get("DefaultActions", [])
                        if a.get("TargetGroupArn")})
    if forwarded:  # the region's target groups, the read that finds ours (one read for both)
        listed = {t["TargetGroupArn"]: t for page in aws.elbv2.get_paginator("describe_target_groups").paginate()
                  for t in page["TargetGroups"]}
        unlisted = [arn for arn in forwarded if arn not in listed]
        if unlisted:  # created since the list was read
            listed.update({t["TargetGroupArn"]: t for t in aws.elbv2.describe_target_groups(
                TargetGroupArns=unlisted)["TargetGroups"]})
        inv.listener_groups = {arn: listed[arn] for arn in forwarded if arn in listed}
    subnet_ids = {az["SubnetId"] for az in inv.lb.get("AvailabilityZones", [])}
    if subnet_ids:  # the load balancer's subnets are the VPC's: the read inspect made
        inv.subnets = {s["SubnetId"]: s for page in aws.ec2.get_paginator("describe_subnets").paginate(
            Filters=[{"Name": "vpc-id", "Values": [inv.lb["VpcId"]]}]) for s in page["Subnets"]
            if s["SubnetId"] in subnet_ids}
    inv.nlb_rules = _inbound_rules(aws, sorted(inv.lb.get("SecurityGroups") or []))


def _fetch_targets(ctx: Context, inv: Inventory) -> None:
    """Our target groups, their targets' health, and the instances behind them and in the cluster."""
    aws = ctx.aws
    inv.target_groups = owned_target_groups(ctx)
    for tg in inv.target_groups:
        inv.health[tg["TargetGroupArn"]] = aws.elbv2.describe_target_health(
            TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
    # instance targets only: IP targets (awsvpc) are task addresses, not instances
    target_ids = {d["Target"]["Id"] for descs in inv.health.values() for d in descs
                  if d["Target"]["Id"].startswith("i-")}
    cluster_ids = {i["instance_id"] for i in inv.world.instances}
    instance_ids = sorted(target_ids | cluster_ids)
    if instance_ids:
        reservations = [r for page in aws.ec2.get_paginator("describe_instances").paginate(InstanceIds=instance_ids)
                        for r in page["Reservations"]]
        inv.instances = {i["InstanceId"]: i for r in reservations for i in r["Instances"]}


def _fetch_groups(ctx: Context, inv: Inventory) -> None:
    """The instances' inbound rules (ours and all), and the runbook's own groups on the V2 / ALB / awsvpc paths."""
    aws, p, n = ctx.aws, ctx.params, ctx.names
    group_ids = sorted({g["GroupId"] for i in inv.instances.values() for g in i.get("SecurityGroups", [])})
    for group_id in group_ids:
        inv.rules += owned_rules(ctx, group_id)
    inv.all_rules = _inbound_rules(aws, group_ids)
    wanted_groups = []
    if p.vpc_link.version == 2:
        wanted_groups.append(n.link_security_group)
    if p.nlb.type == "application":
        wanted_groups.append(n.alb_security_group)
    if p.awsvpc:
        wanted_groups.append(n.task_security_group)
    if p.nlb.type == "network" and (inv.lb or {}).get("SecurityGroups"):
        wanted_groups.append(n.nlb_security_group)  # its rules are among nlb_rules; only which group is ours
    for name in wanted_groups:
        if name == n.nlb_security_group:
            inv.groups[name] = find_security_group(ctx, name)
            continue
        inv.groups[name] = find_security_group(ctx, name)
        if inv.groups[name]:
            inv.group_rules[name] = _inbound_rules(aws, [inv.groups[name]["GroupId"]])


def _tasks(ctx: Context, world: World, desired: str = "RUNNING") -> list[dict]:
    """Our service's tasks (desired RUNNING, or recently STOPPED): where each runs, which host port each
    container port is bound to, and why a stopped one stopped."""
    ecs = ctx.aws.ecs
    arns = [a for page in ecs.get_paginator("list_tasks").paginate(cluster=ctx.params.cluster,
                                                                   serviceName=ctx.names.ecs_service,
                                                                   desiredStatus=desired)
            for a in page["taskArns"]]
    by_arn = {i["container_instance_arn"]: i for i in world.instances}
    out = []
    for start in range(0, len(arns), 100):
        for task in ecs.describe_tasks(cluster=ctx.params.cluster, tasks=arns[start:start + 100])["tasks"]:
            instance = by_arn.get(task.get("containerInstanceArn", ""), {})
            details = {d["name"]: d["value"] for a in task.get("attachments", [])
                       if a.get("type") == "ElasticNetworkInterface" for d in a.get("details", [])}
            out.append({
                "id": task["taskArn"].split("/")[-1], "instance_id": instance.get("instance_id"),
                "ip": details.get("privateIPv4Address"),
                "az": instance.get("az") or task.get("availabilityZone"), "last_status": task.get("lastStatus"),
                "task_definition": task.get("taskDefinitionArn", "").split("/")[-1],
                "bindings": {b["containerPort"]: b["hostPort"] for c in task.get("containers", [])
                             for b in c.get("networkBindings", [])},
                "created_at": task.get("createdAt"), "stop_code": task.get("stopCode"),
                "stopped_reason": task.get("stoppedReason"),
            })
    return out
