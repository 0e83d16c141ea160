"""The ECS service: task definition (bridge with a fixed or dynamic host port, or awsvpc on EC2 or Fargate), the
security group rules that admit the load balancer (instance groups, or the tasks' own group), the service."""

from __future__ import annotations

from vpclink_runbooks.aws import ec2 as aws_ec2
from vpclink_runbooks.aws import ecs as aws_ecs
from vpclink_runbooks.aws import task_needs, waits
from vpclink_runbooks.context import Context
from vpclink_runbooks.errors import PreflightRefused, StepFailed, WaitTimedOut
from vpclink_runbooks.plan import Plan
from vpclink_runbooks.steps.inspect import World, placeable_instances, rollout_problem
from vpclink_runbooks.steps.load_balancer import (
    EPHEMERAL_RANGE,
    desired_subnets,
    ensure_ingress,
    ensure_security_group,
    exposed_ports,
    find_load_balancer,
    find_security_group,
    nlb_security_group,
    owned_target_groups,
    rule_source,
)

PERMISSIONS = [
    "ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition", "ecs:DescribeServices", "ecs:CreateService",
    "ecs:UpdateService", "ecs:TagResource", "ecs:ListTasks", "ecs:DescribeTasks", "iam:PassRole",
    "ec2:DescribeSecurityGroupRules", "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress",
    "ec2:CreateTags", "ec2:DescribeSubnets", "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DescribeTargetGroups", "ec2:DescribeSecurityGroups", "ec2:CreateSecurityGroup",
]


# ---- task definition ---------------------------------------------------------------------------------

def desired_container(ctx: Context) -> dict:
    s = ctx.params.service
    # fixed: the NLB targets this host port; dynamic: 0, ECS picks one per task; awsvpc: the container port.
    host_port = (s.host_port if ctx.params.fixed_host_port else 0 if ctx.params.dynamic_host_ports
                 else s.container_port)
    mappings = [{"containerPort": s.container_port, "hostPort": host_port, "protocol": "tcp"}]
    mappings += [{"containerPort": e.container_port, "hostPort": e.host_port, "protocol": "tcp"}
                 for e in s.extra_ports]
    container = {
        "name": ctx.names.container, "image": s.image, "cpu": s.cpu, "memory": s.memory, "essential": True,
        "portMappings": mappings,
        "environment": [{"name": k, "value": v} for k, v in sorted(s.environment.items())],
        # Only ARNs: ECS resolves them at task start, so no secret value passes through the runbook.
        "secrets": [{"name": k, "valueFrom": v} for k, v in sorted(s.secrets.items())],
    }
    return container


def _comparable(container: dict) -> dict:
    keys = ("name", "image", "cpu", "memory", "essential", "portMappings", "environment", "secrets")
    out = {k: container.get(k) for k in keys}
    out["portMappings"] = sorted(({"containerPort": m["containerPort"], "hostPort": m.get("hostPort"),
                                   "protocol": m.get("protocol", "tcp")} for m in container.get("portMappings", [])),
                                 key=lambda m: m["containerPort"])
    out["environment"] = sorted(container.get("environment") or [], key=lambda e: e["name"])
    out["secrets"] = sorted(container.get("secrets") or [], key=lambda e: e["name"])
    return out


def current_task_definition(ctx: Context) -> dict | None:
    return aws_ecs.task_definition(ctx.aws, ctx.names)


def _execution_role(ctx: Context) -> str | None:
    """service.execution_role's ARN when the task definition uses one (task_needs.uses_execution_role)."""
    return task_needs.execution_role_arn(ctx.params) if task_needs.uses_execution_role(ctx.params) else None


def ensure_task_definition(ctx: Context, plan: Plan) -> str:
    """Returns the task definition ARN the service should run (family:revision)."""
    desired = desired_container(ctx)
    current = current_task_definition(ctx)
    ports = ", ".join(f"{m['hostPort']}->{m['containerPort']}" for m in desired["portMappings"])
    if current is not None:
        containers = current.get("containerDefinitions", [])
        same = (len(containers) == 1 and _comparable(containers[0]) == _comparable(desired)
                and current.get("networkMode") == ctx.params.service.network_mode
                and _compatible(current, ctx)
                and current.get("executionRoleArn") == _execution_role(ctx))
        if same:
            plan.add(f"task definition {ctx.names.task_family}", "none", f"revision {current['revision']}, {ports}",
                     ports, "up to date")
            return current["taskDefinitionArn"]
        old_ports = ", ".join(f"{m.get('hostPort')}->{m['containerPort']}"
                              for c in containers for m in c.get("portMappings", []))
        action, current_text = "update", f"revision {current['revision']}, {old_ports}"
    else:
        action, current_text = "create", None
    arn = f"{ctx.names.task_family}:(new revision)"
    s = ctx.params.service
    why = ("bridge mode with a fixed hostPort so NLB instance targets reach the container" if ctx.params.fixed_host_port
           else "bridge mode with hostPort 0: ECS gives each task an ephemeral host port the ALB targets"
           if ctx.params.dynamic_host_ports else
           f"awsvpc on {s.launch_type}: each task gets its own network interface and IP, registered as an IP target")
    if plan.add(f"task definition {ctx.names.task_family}", action, current_text,
                f"{s.network_mode} {s.launch_type}, {ports}", why):
        extra = {"executionRoleArn": _execution_role(ctx)} if _execution_role(ctx) else {}
        if s.launch_type == "FARGATE":
            extra.update(cpu=str(s.cpu), memory=str(s.memory))
        arn = ctx.aws.ecs.register_task_definition(
            family=ctx.names.task_family, networkMode=s.network_mode, requiresCompatibilities=[s.launch_type],
            containerDefinitions=[desired], tags=ctx.names.tag_list("key", "value"), **extra,
        )["taskDefinition"]["taskDefinitionArn"]
    return arn


def _compatible(current: dict, ctx: Context) -> bool:
    s = ctx.params.service
    if s.launch_type not in (current.get("requiresCompatibilities") or ["EC2"]):
        return False
    if s.launch_type == "FARGATE":
        return str(current.get("cpu")) == str(s.cpu) and str(current.get("memory")) == str(s.memory)
    return True


# ---- security group rules ----------------------------------------------------------------------------

def instance_security_groups(world: World) -> list[str]:
    """Where the host-port rule belongs: the security group all cluster instances share, else each
    instance's first (primary) group, so every instance admits the NLB whatever its groups."""
    running = [i for i in world.instances if i["state"] == "running"]
    bare = [i["instance_id"] for i in running if not i["security_groups"]]
    if bare:
        raise PreflightRefused(f"instance(s) {bare} have no security group; attach one so the host-port rule "
                               "can admit the NLB subnets")
    sets = [set(i["security_groups"]) for i in running]
    shared = sorted(set.intersection(*sets)) if sets else []
    if shared:
        return shared[:1]
    return sorted({i["security_groups"][0] for i in running})


def nlb_subnet_cidrs(ctx: Context, world: World) -> list[str]:
    lb = find_load_balancer(ctx)
    subnet_ids = (sorted(az["SubnetId"] for az in lb.get("AvailabilityZones", [])) if lb
                  else desired_subnets(ctx, world))
    return sorted(s["cidr"] for s in world.subnets if s["subnet_id"] in subnet_ids)


def owned_rules(ctx: Context, group_id: str) -> list[dict]:
    return aws_ec2.owned_rules(ctx.aws, ctx.names, group_id)


def link_subnet_cidrs(ctx: Context, world: World) -> list[str]:
    """Where a V2 link's interfaces send from (an NLB keeps the client IP for instance targets)."""
    if ctx.params.vpc_link.version != 2:
        return []
    from vpclink_runbooks.steps.vpc_link import link_subnets

    subnet_ids = link_subnets(ctx, find_load_balancer(ctx)) or desired_subnets(ctx, world)
    return sorted(s["cidr"] for s in world.subnets if s["subnet_id"] in subnet_ids)


def ensure_security_group_rules(ctx: Context, world: World, plan: Plan) -> None:
    p = ctx.params
    if p.awsvpc:
        _ensure_task_security_group(ctx, world, plan)
        return
    if p.dynamic_host_ports:
        alb_group = find_security_group(ctx, ctx.names.alb_security_group)
        source = alb_group["GroupId"] if alb_group else "<ALB security group>"
        for group_id in instance_security_groups(world):
            ensure_ingress(ctx, plan, group_id, "dynamic host ports from the ALB",
                           {(EPHEMERAL_RANGE[0], EPHEMERAL_RANGE[1], source)},
                           "ECS gives each task an ephemeral host port; only the ALB's security group may reach it")
        return
    nlb_group = nlb_security_group(ctx)
    # The NLB's own group admits it (traffic and health checks, client IP preserved or not); else its subnets'
    # CIDRs, and a V2 link's (the NLB keeps the link's address as the client IP for instance targets).
    cidrs = [] if nlb_group else sorted(set(nlb_subnet_cidrs(ctx, world)) | set(link_subnet_cidrs(ctx, world)))
    sources = [nlb_group] if nlb_group else cidrs
    s = p.service
    host_ports = [s.host_port] + [e.host_port for e in s.extra_ports]
    for group_id in instance_security_groups(world):
        _ensure_rules_in_group(ctx, plan, group_id, {(port, source) for port in host_ports for source in sources})


def task_subnets(ctx: Context, world: World) -> list[str]:
    """awsvpc: service.subnets, else the load balancer's subnets, else where the cluster instances are."""
    if ctx.params.service.subnets:
        return sorted(ctx.params.service.subnets)
    lb = find_load_balancer(ctx)
    if lb is not None:
        return sorted(az["SubnetId"] for az in lb.get("AvailabilityZones", []))
    return desired_subnets(ctx, world)


def _ensure_task_security_group(ctx: Context, world: World, plan: Plan) -> str | None:
    """awsvpc tasks' own group: the container port from the load balancer only (NLB subnets, or the ALB's group)."""
    group_id = ensure_security_group(ctx, plan, ctx.names.task_security_group,
                                     "awsvpc tasks of the service accept the container port from the load balancer")
    port = ctx.params.service.container_port
    if ctx.params.nlb.type == "application":
        alb_group = find_security_group(ctx, ctx.names.alb_security_group)
        sources = [alb_group["GroupId"] if alb_group else "<ALB security group>"]
        why = "only the ALB's security group reaches the tasks"
    elif nlb_group := nlb_security_group(ctx):
        sources = [nlb_group]
        why = "only the NLB's own security group reaches the tasks"
    else:
        sources = nlb_subnet_cidrs(ctx, world)
        why = "NLB health checks and traffic to IP targets come from the NLB subnets; nothing wider"
    ensure_ingress(ctx, plan, group_id, "container port from the load balancer",
                   {(port, port, source) for source in sources}, why)
    return group_id


def _ensure_rules_in_group(ctx: Context, plan: Plan, group_id: str, wanted: set[tuple[int, str]]) -> None:
    """Exactly the host-port rules `wanted` ((port, source CIDR or NLB group id)) among the rules we tagged."""
    existing = {(r["FromPort"], rule_source(r)): r for r in owned_rules(ctx, group_id)}
    for port, source in sorted(wanted - set(existing)):
        from_group = not source[:1].isdigit()
        why = ("only the NLB's own security group may reach the host port" if from_group else
               "NLB health checks and traffic come from the NLB subnets; nothing wider")
        if plan.add(f"{group_id} ingress tcp:{port} from {source}", "create", None, "allow", why):
            described = ctx.names.rule_description(port, "NLB security group" if from_group else "NLB subnet")
            origin = ({"UserIdGroupPairs": [{"GroupId": source, "Description": described}]} if from_group else
                      {"IpRanges": [{"CidrIp": source, "Description": described}]})
            ctx.aws.ec2.authorize_security_group_ingress(
                GroupId=group_id,
                IpPermissions=[{"IpProtocol": "tcp", "FromPort": port, "ToPort": port, **origin}],
                TagSpecifications=[{"ResourceType": "security-group-rule", "Tags": ctx.names.tag_list()}])
    for key in sorted(set(existing) & wanted):
        plan.add(f"{group_id} ingress tcp:{key[0]} from {key[1]}", "none", "allow", "allow", "exists")
    stale = [existing[k] for k in sorted(set(existing) - wanted)]
    for rule in stale:
        plan.add(f"{group_id} ingress tcp:{rule['FromPort']} from {rule_source(rule)}", "delete", "allow", None,
                 "the host port, the NLB's group or its subnets changed; the old opening is removed")
    if stale and plan.apply:
        ctx.aws.ec2.revoke_security_group_ingress(GroupId=group_id,
                                                  SecurityGroupRuleIds=[r["SecurityGroupRuleId"] for r in stale])


# ---- the service ---------------------------------------------------------------------------------------

def describe_service(ctx: Context) -> list[dict] | None:
    """The service records ECS has under our service name (any status, with tags); None without the cluster."""
    return aws_ecs.services(ctx.aws, ctx.names, ctx.params.cluster)


def find_service(ctx: Context) -> dict | None:
    """Our ACTIVE service; errors.NotOurs (the step refuses) when one of its name is not tagged as ours."""
    return aws_ecs.service(ctx.aws, ctx.names, ctx.params.cluster)


def _load_balancers(ctx: Context) -> list[dict]:
    groups = {tg["TargetGroupName"]: tg["TargetGroupArn"] for tg in owned_target_groups(ctx)}
    wanted = []
    for port in exposed_ports(ctx):
        arn = groups.get(ctx.names.target_group(port.host_port), f"(target group {port.host_port})")
        wanted.append({"targetGroupArn": arn, "containerName": ctx.names.container,
                       "containerPort": port.container_port})
    return wanted


def check_rollout(ctx: Context, world: World) -> None:
    p = ctx.params
    capacity = len(placeable_instances(ctx, world))
    if p.service.desired_count > capacity:
        raise PreflightRefused(
            f"service.desired_count {p.service.desired_count} but only {capacity} instance(s) can take host port "
            f"{p.service.host_port}: a fixed host port allows one task per instance. Lower desired_count or add "
            "instances. Nothing was changed.")
    problem = rollout_problem(p.service.desired_count, capacity, p.minimum_healthy_percent,
                              p.maximum_percent)
    if problem:
        raise PreflightRefused(f"service.deployment: {problem}. Nothing was changed.")


def _network_configuration(ctx: Context, world: World) -> dict | None:
    if not ctx.params.awsvpc:
        return None
    group = find_security_group(ctx, ctx.names.task_security_group)
    config = {"subnets": task_subnets(ctx, world),
              "securityGroups": [group["GroupId"] if group else f"<{ctx.names.task_security_group}>"]}
    if ctx.params.service.launch_type == "FARGATE":
        config["assignPublicIp"] = "DISABLED"  # private subnets only; EC2 tasks take no such setting
    return {"awsvpcConfiguration": config}


def _placement(ctx: Context) -> dict:
    p = ctx.params
    if p.service.launch_type == "FARGATE":
        return {}  # Fargate places tasks itself (across the subnets' AZs)
    spread = [{"type": "spread", "field": "attribute:ecs.availability-zone"}]
    if p.fixed_host_port:
        return {"placementConstraints": [{"type": "distinctInstance"}], "placementStrategy": spread}
    return {"placementStrategy": spread}


def ensure_service(ctx: Context, world: World, task_definition: str, plan: Plan) -> None:
    p, names = ctx.params, ctx.names
    if p.fixed_host_port:
        check_rollout(ctx, world)
    else:
        plan.add("fixed host port constraint", "none", "-", "does not apply",
                 ("awsvpc: every task has its own network interface and IP, so several tasks can run on one "
                  "instance (or on Fargate) and deployments need no spare instance" if p.awsvpc else
                  "dynamic host ports: ECS picks a free ephemeral port per task, so several tasks can run on one "
                  "instance and deployments need no spare instance"))
    deployment = {"maximumPercent": p.maximum_percent, "minimumHealthyPercent": p.minimum_healthy_percent}
    load_balancers = _load_balancers(ctx)
    network = _network_configuration(ctx, world)
    current = find_service(ctx)
    spread = "one task per instance" if p.fixed_host_port else f"{p.service.network_mode} {p.service.launch_type}"
    desired_text = (f"{task_definition.split('/')[-1]}, desired {p.service.desired_count}, "
                    f"{spread}, deploy {deployment['minimumHealthyPercent']}-{deployment['maximumPercent']}%")
    if current is None:
        why = ("runs one task per instance on the fixed host port, registered in the target group"
               if p.fixed_host_port else "ECS registers every task in the target group as it starts")
        draining = any(s.get("status") == "DRAINING" for s in describe_service(ctx) or [])
        if draining:
            why += f"; a deleted service named {names.ecs_service} is still DRAINING: apply waits for it to go"
        if plan.add(f"ECS service {names.ecs_service}", "create", None, desired_text, why):
            if draining:
                _wait_drained(ctx)
            extra = {"networkConfiguration": network} if network else {}
            ctx.aws.ecs.create_service(
                cluster=p.cluster, serviceName=names.ecs_service, taskDefinition=task_definition,
                desiredCount=p.service.desired_count, launchType=p.service.launch_type, loadBalancers=load_balancers,
                **_placement(ctx), **extra,
                deploymentConfiguration=deployment, healthCheckGracePeriodSeconds=30,
                tags=names.tag_list("key", "value"), propagateTags="SERVICE", enableECSManagedTags=True)
        return
    changes = {}
    if current["taskDefinition"] != task_definition:
        changes["taskDefinition"] = task_definition
    if current["desiredCount"] != p.service.desired_count:
        changes["desiredCount"] = p.service.desired_count
    current_lbs = [{k: lb.get(k) for k in ("targetGroupArn", "containerName", "containerPort")}
                   for lb in current.get("loadBalancers", [])]
    if current_lbs != load_balancers:
        changes["loadBalancers"] = load_balancers
    current_dep = {k: current.get("deploymentConfiguration", {}).get(k) for k in deployment}
    if current_dep != deployment:
        changes["deploymentConfiguration"] = deployment
    if network and _network_differs(current.get("networkConfiguration"), network):
        changes["networkConfiguration"] = network
    if current.get("launchType", "EC2") != p.service.launch_type:
        raise StepFailed(f"ECS service {names.ecs_service} runs on {current.get('launchType')}; params say "
                         f"{p.service.launch_type}, and a service's launch type cannot change: destroy and apply "
                         "again (or use another service.name)")
    if not changes:
        plan.add(f"ECS service {names.ecs_service}", "none", desired_text, desired_text, "up to date")
        return
    shown = {k: (v.split("/")[-1] if isinstance(v, str) else v) for k, v in changes.items()}
    if plan.add(f"ECS service {names.ecs_service}", "update", {k: _short(current, k) for k in changes}, shown,
                "the service must run the current task definition behind the current target group"):
        ctx.aws.ecs.update_service(cluster=p.cluster, service=names.ecs_service, **changes)


DRAIN_WAIT_SECONDS = 600


def _wait_drained(ctx: Context) -> None:
    """ECS refuses to create a service while a deleted one of that name drains (its tasks stop, its targets
    deregister): wait, bounded, for it to be INACTIVE."""
    name = ctx.names.ecs_service
    try:
        waits.wait(ctx.aws.ecs, "services_inactive", f"old ECS service {name} INACTIVE", timeout=DRAIN_WAIT_SECONDS,
                   cluster=ctx.params.cluster, services=[name])
    except WaitTimedOut as exc:
        raise StepFailed(f"a deleted ECS service named {name} is still DRAINING after {DRAIN_WAIT_SECONDS}s and ECS "
                         "refuses to create one of that name until it is INACTIVE: check its tasks and targets "
                         "(`aws ecs describe-services`), then apply again") from exc


def _network_differs(current: dict | None, desired: dict) -> bool:
    have = (current or {}).get("awsvpcConfiguration", {})
    want = desired["awsvpcConfiguration"]
    return (sorted(have.get("subnets", [])) != sorted(want["subnets"])
            or sorted(have.get("securityGroups", [])) != sorted(want["securityGroups"]))


def _short(service: dict, key: str) -> object:
    value = service.get(key)
    if key == "taskDefinition":
        return str(value).split("/")[-1]
    if key == "loadBalancers":
        return [f"{lb['targetGroupArn'].split('/')[-2]}:{lb['containerPort']}" for lb in value or []]
    return value


def converge(ctx: Context, world: World) -> Plan:
    plan = Plan(apply=ctx.apply)
    task_definition = ensure_task_definition(ctx, plan)
    ensure_security_group_rules(ctx, world, plan)
    ensure_service(ctx, world, task_definition, plan)
    return plan


def wait_stable(ctx: Context) -> str:
    service = find_service(ctx)
    if service is None:
        return "no ECS service yet (plan mode): nothing to wait for"
    return waits.waited(ctx.aws.ecs, "services_stable", f"ECS service {ctx.names.ecs_service} stable",
                        f"ECS service {ctx.names.ecs_service} is stable",
                        cluster=ctx.params.cluster, services=[ctx.names.ecs_service])


def wait_targets_healthy(ctx: Context) -> str:
    groups = {tg["TargetGroupName"]: tg for tg in owned_target_groups(ctx)}
    done = []
    for port in exposed_ports(ctx):
        tg = groups.get(ctx.names.target_group(port.host_port))
        if tg is None:
            return "no target group yet (plan mode): nothing to wait for"
        done.append(waits.waited(ctx.aws.elbv2, "target_in_service", f"targets of {tg['TargetGroupName']} healthy",
                                 f"{tg['TargetGroupName']} healthy", TargetGroupArn=tg["TargetGroupArn"]))
    return "; ".join(done)
