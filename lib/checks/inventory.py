"""The inventory: everything verify looks at, fetched once (the only AWS reads of checks besides probes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from vpclink_runbooks.aws.missing import ignore_missing
from vpclink_runbooks.aws.parallel import gather
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
    inventory; what time alone changes (health, tasks, statuses) is read from AWS. Reads that need no other's
    answer go out side by side (aws.parallel); the probes go last, on what was read."""
    with fresh(ctx.aws):
        return _fetch(ctx, probe)


def _fetch(ctx: Context, probe: bool) -> Inventory:
    inv = Inventory(params=ctx.params, names=ctx.names)
    # Reads that need no other's answer go out side by side, each branch reading in its own order and writing
    # only its own fields; if any fails, the first in the order below is raised, as when read one after another.
    # First what needs nothing read before: the world, our target groups' health, our service, our own groups.
    inv.world, *_ = gather(lambda: discover(ctx), lambda: _fetch_target_health(ctx, inv),
                           lambda: _fetch_service(ctx, inv), lambda: _fetch_own_groups(ctx, inv))
    inv.vpc_link_count = len(inv.world.vpc_links)
    # Then what needs it: the world's lists answer the reads by name (our load balancer, our base path mapping)
    # from the run inventory, and the instances and tasks are the world's joined with what was just read.
    _, inv.link, *_ = gather(lambda: _fetch_api(ctx, inv), lambda: find_link(ctx),
                             lambda: _fetch_load_balancer(ctx, inv), lambda: _fetch_instances(ctx, inv),
                             lambda: _fetch_tasks(ctx, inv))
    if probe:
        inv.probes.update(_probes(ctx, inv))
    return inv


def _fetch_api(ctx: Context, inv: Inventory) -> None:
    """The base path mapping, our API's stage and deployment, and the integration on its proxy resource."""
    gw, a = ctx.aws.apigateway, ctx.params.api
    inv.mapping, inv.api = gather(
        lambda: ignore_missing(lambda: gw.get_base_path_mapping(domainName=a.domain_name, basePath=a.base_path),
                               "NotFoundException"),
        lambda: find_rest_api(ctx))
    if not inv.api:
        return
    gather(lambda: _fetch_stage(ctx, inv), lambda: _fetch_integration(ctx, inv))


def _fetch_stage(ctx: Context, inv: Inventory) -> None:
    gw, api_id = ctx.aws.apigateway, inv.api["id"]
    inv.stage = ignore_missing(lambda: gw.get_stage(restApiId=api_id, stageName=ctx.params.api.stage),
                               "NotFoundException")
    if inv.stage and inv.stage.get("deploymentId"):
        inv.deployment = ignore_missing(lambda: gw.get_deployment(restApiId=api_id,
                                        deploymentId=inv.stage["deploymentId"]), "NotFoundException")


def _fetch_integration(ctx: Context, inv: Inventory) -> None:
    gw, api_id = ctx.aws.apigateway, inv.api["id"]
    resources = [r for page in gw.get_paginator("get_resources").paginate(restApiId=api_id) for r in page["items"]]
    proxy = next((r for r in resources if r.get("pathPart") == PROXY_PATH), None)
    if proxy:
        inv.integration = ignore_missing(lambda: gw.get_integration(restApiId=api_id, resourceId=proxy["id"],
                                                                    httpMethod="ANY"), "NotFoundException")
        inv.probes["resource_id"] = {"id": proxy["id"]}


def _fetch_load_balancer(ctx: Context, inv: Inventory) -> None:
    """Our load balancer; cross-zone, the listeners and the groups they forward to, its subnets, its rules, and
    which of its security groups is ours."""
    inv.lb = find_load_balancer(ctx)
    if not inv.lb:
        return
    aws, arn = ctx.aws, inv.lb["LoadBalancerArn"]
    subnet_ids = {az["SubnetId"] for az in inv.lb.get("AvailabilityZones", [])}
    attrs, (inv.listeners, inv.listener_groups), subnets, inv.nlb_rules, nlb_group = gather(
        lambda: aws.elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"],
        lambda: _listeners(aws, arn),
        # the load balancer's subnets are the VPC's: the read inspect made
        lambda: [s for page in aws.ec2.get_paginator("describe_subnets").paginate(
            Filters=[{"Name": "vpc-id", "Values": [inv.lb["VpcId"]]}]) for s in page["Subnets"]] if subnet_ids else [],
        lambda: _inbound_rules(aws, sorted(inv.lb.get("SecurityGroups") or [])),
        # its rules are among nlb_rules; only which group is ours
        lambda: find_security_group(ctx, ctx.names.nlb_security_group) if _nlb_group_wanted(ctx, inv.lb) else None)
    inv.cross_zone = any(a["Key"] == "load_balancing.cross_zone.enabled" and a["Value"] == "true" for a in attrs)
    inv.subnets = {s["SubnetId"]: s for s in subnets if s["SubnetId"] in subnet_ids}
    if _nlb_group_wanted(ctx, inv.lb):  # last of the groups (after _fetch_own_groups'), as when read in turn
        inv.groups[ctx.names.nlb_security_group] = nlb_group


def _nlb_group_wanted(ctx: Context, lb: dict) -> bool:
    return ctx.params.nlb.type == "network" and bool(lb.get("SecurityGroups"))


def _listeners(aws, arn: str) -> tuple[list[dict], dict[str, dict]]:
    """The load balancer's listeners, and every target group a listener forwards to."""
    listeners = aws.elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]
    forwarded = sorted({a["TargetGroupArn"] for li in listeners for a in li.get("DefaultActions", [])
                        if a.get("TargetGroupArn")})
    if not forwarded:
        return listeners, {}
    # the region's target groups, the read that finds ours (one read for both)
    listed = {t["TargetGroupArn"]: t for page in aws.elbv2.get_paginator("describe_target_groups").paginate()
              for t in page["TargetGroups"]}
    unlisted = [arn for arn in forwarded if arn not in listed]
    if unlisted:  # created since the list was read
        listed.update({t["TargetGroupArn"]: t for t in aws.elbv2.describe_target_groups(
            TargetGroupArns=unlisted)["TargetGroups"]})
    return listeners, {arn: listed[arn] for arn in forwarded if arn in listed}


def _fetch_target_health(ctx: Context, inv: Inventory) -> None:
    """Our target groups and their targets' health (one read per group, side by side)."""
    inv.target_groups = owned_target_groups(ctx)
    arns = [tg["TargetGroupArn"] for tg in inv.target_groups]
    inv.health = dict(zip(arns, gather(*[partial(_health, ctx.aws, arn) for arn in arns]), strict=True))


def _health(aws, arn: str) -> list[dict]:
    return aws.elbv2.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]


def _fetch_instances(ctx: Context, inv: Inventory) -> None:
    """The instances behind our targets and in the cluster, and their inbound rules (ours and all)."""
    aws = ctx.aws
    # instance targets only: IP targets (awsvpc) are task addresses, not instances
    target_ids = {d["Target"]["Id"] for descs in inv.health.values() for d in descs
                  if d["Target"]["Id"].startswith("i-")}
    cluster_ids = {i["instance_id"] for i in inv.world.instances}
    instance_ids = sorted(target_ids | cluster_ids)
    if instance_ids:
        reservations = [r for page in aws.ec2.get_paginator("describe_instances").paginate(InstanceIds=instance_ids)
                        for r in page["Reservations"]]
        inv.instances = {i["InstanceId"]: i for r in reservations for i in r["Instances"]}
    group_ids = sorted({g["GroupId"] for i in inv.instances.values() for g in i.get("SecurityGroups", [])})
    *owned, inv.all_rules = gather(*[partial(owned_rules, ctx, group_id) for group_id in group_ids],
                                   lambda: _inbound_rules(aws, group_ids))
    inv.rules = [rule for rules in owned for rule in rules]


def _fetch_service(ctx: Context, inv: Inventory) -> None:
    """Our service and its task definition."""
    inv.service = find_service(ctx)
    if inv.service:
        inv.task_definition = ctx.aws.ecs.describe_task_definition(
            taskDefinition=inv.service["taskDefinition"])["taskDefinition"]


def _fetch_tasks(ctx: Context, inv: Inventory) -> None:
    """Our service's running and recently stopped tasks, on the world's instances."""
    if inv.service:
        inv.tasks, inv.stopped_tasks = gather(lambda: _tasks(ctx, inv.world),
                                              lambda: _tasks(ctx, inv.world, "STOPPED"))


def _fetch_own_groups(ctx: Context, inv: Inventory) -> None:
    """The runbook's own groups on the V2 / ALB / awsvpc paths, with their inbound rules (the NLB's, whether
    wanted depends on the load balancer: _fetch_load_balancer)."""
    p, n = ctx.params, ctx.names
    wanted = [name for name, needed in ((n.link_security_group, p.vpc_link.version == 2),
                                        (n.alb_security_group, p.nlb.type == "application"),
                                        (n.task_security_group, p.awsvpc)) if needed]
    for name, (group, rules) in zip(wanted, gather(*[partial(_group_and_rules, ctx, name) for name in wanted]),
                                    strict=True):
        inv.groups[name] = group
        if group:
            inv.group_rules[name] = rules


def _group_and_rules(ctx: Context, name: str) -> tuple[dict | None, list[dict]]:
    group = find_security_group(ctx, name)
    return group, _inbound_rules(ctx.aws, [group["GroupId"]]) if group else []


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
