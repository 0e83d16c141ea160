"""Verify (the doctor): fetch the live chain once into an inventory, then run pure checks hop by hop."""

from __future__ import annotations

import html
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from urllib.parse import urlparse

import pandas as pd
from botocore.config import Config
from botocore.exceptions import ClientError

from vpclink_runbooks import request as request_mod
from vpclink_runbooks.aws.session import RETRY_CONFIG
from vpclink_runbooks.context import Context
from vpclink_runbooks.steps.api import (
    FINGERPRINT_PREFIX,
    INTEGRATION_TIMEOUT_MS,
    PROXY_PATH,
    STAGE_VARIABLE,
    find_rest_api,
    fingerprint,
)
from vpclink_runbooks.steps.ecs_service import find_service, owned_rules
from vpclink_runbooks.steps.inspect import VPC_LINK_QUOTA, World, discover, placeable_instances, rollout_problem
from vpclink_runbooks.steps.load_balancer import (
    EPHEMERAL_RANGE,
    exposed_ports,
    find_load_balancer,
    find_security_group,
    health_check_drift,
    owned_target_groups,
)
from vpclink_runbooks.steps.vpc_link import find_link

PERMISSIONS = ["apigateway:GET", "apigateway:POST", "elasticloadbalancing:DescribeLoadBalancers",
               "elasticloadbalancing:DescribeTags", "elasticloadbalancing:DescribeLoadBalancerAttributes",
               "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeTargetGroups",
               "elasticloadbalancing:DescribeTargetHealth", "ecs:DescribeServices", "ecs:DescribeTaskDefinition",
               "ecs:ListTasks", "ecs:DescribeTasks", "ecs:ListContainerInstances",
               "ecs:DescribeContainerInstances", "ec2:DescribeSecurityGroupRules", "ec2:DescribeSubnets",
               "ec2:DescribeInstances", "ec2:DescribeVpcs", "ec2:DescribeRouteTables", "ec2:DescribeSecurityGroups"]
# The hops in request order; the first failing one is the verdict. Aligned with diagram.HOP_IDS
# (which adds "domain", the planned-path box for the custom domain itself).
HOPS = ["mapping", "stage", "integration", "vpc_link", "nlb", "listener", "target_group", "targets",
        "task_definition", "security_group", "service", "endpoint"]


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


def _ignore_missing(call: Callable, *codes: str):
    try:
        return call()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in codes:
            return None
        raise


def _inbound_rules(aws, group_ids: list[str]) -> list[dict]:
    if not group_ids:
        return []
    return [r for page in aws.ec2.get_paginator("describe_security_group_rules").paginate(
        Filters=[{"Name": "group-id", "Values": group_ids}]) for r in page["SecurityGroupRules"] if not r["IsEgress"]]


def fetch(ctx: Context, *, probe: bool = True) -> Inventory:
    aws, p = ctx.aws, ctx.params
    gw = aws.apigateway
    inv = Inventory(params=p, names=ctx.names)
    inv.world = discover(ctx)
    inv.vpc_link_count = len(inv.world.vpc_links)
    inv.mapping = _ignore_missing(lambda: gw.get_base_path_mapping(domainName=p.api.domain_name,
                                                                   basePath=p.api.base_path), "NotFoundException")
    inv.api = find_rest_api(ctx)
    if inv.api:
        inv.stage = _ignore_missing(lambda: gw.get_stage(restApiId=inv.api["id"], stageName=p.api.stage),
                                    "NotFoundException")
        if inv.stage and inv.stage.get("deploymentId"):
            inv.deployment = _ignore_missing(lambda: gw.get_deployment(restApiId=inv.api["id"],
                                             deploymentId=inv.stage["deploymentId"]), "NotFoundException")
        resources = [r for page in gw.get_paginator("get_resources").paginate(restApiId=inv.api["id"])
                     for r in page["items"]]
        proxy = next((r for r in resources if r.get("pathPart") == PROXY_PATH), None)
        if proxy:
            inv.integration = _ignore_missing(lambda: gw.get_integration(restApiId=inv.api["id"],
                                              resourceId=proxy["id"], httpMethod="ANY"), "NotFoundException")
            inv.probes["resource_id"] = {"id": proxy["id"]}
    inv.link = find_link(ctx)
    inv.lb = find_load_balancer(ctx)
    if inv.lb:
        arn = inv.lb["LoadBalancerArn"]
        attrs = aws.elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]
        inv.cross_zone = any(a["Key"] == "load_balancing.cross_zone.enabled" and a["Value"] == "true" for a in attrs)
        inv.listeners = aws.elbv2.describe_listeners(LoadBalancerArn=arn)["Listeners"]
        forwarded = sorted({a["TargetGroupArn"] for li in inv.listeners for a in li.get("DefaultActions", [])
                            if a.get("TargetGroupArn")})
        if forwarded:
            inv.listener_groups = {t["TargetGroupArn"]: t for t in aws.elbv2.describe_target_groups(
                TargetGroupArns=forwarded)["TargetGroups"]}
        subnet_ids = [az["SubnetId"] for az in inv.lb.get("AvailabilityZones", [])]
        if subnet_ids:
            inv.subnets = {s["SubnetId"]: s for s in aws.ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]}
        inv.nlb_rules = _inbound_rules(aws, sorted(inv.lb.get("SecurityGroups") or []))
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
        reservations = aws.ec2.describe_instances(InstanceIds=instance_ids)["Reservations"]
        inv.instances = {i["InstanceId"]: i for r in reservations for i in r["Instances"]}
    inv.service = find_service(ctx)
    if inv.service:
        inv.task_definition = aws.ecs.describe_task_definition(
            taskDefinition=inv.service["taskDefinition"])["taskDefinition"]
        inv.tasks = _tasks(ctx, inv.world)
        inv.stopped_tasks = _tasks(ctx, inv.world, "STOPPED")
    group_ids = sorted({g["GroupId"] for i in inv.instances.values() for g in i.get("SecurityGroups", [])})
    for group_id in group_ids:
        inv.rules += owned_rules(ctx, group_id)
    inv.all_rules = _inbound_rules(aws, group_ids)
    n = ctx.names
    wanted_groups = []
    if p.vpc_link.version == 2:
        wanted_groups.append(n.link_security_group)
    if p.nlb.type == "application":
        wanted_groups.append(n.alb_security_group)
    if p.awsvpc:
        wanted_groups.append(n.task_security_group)
    for name in wanted_groups:
        inv.groups[name] = find_security_group(ctx, name)
        if inv.groups[name]:
            inv.group_rules[name] = _inbound_rules(aws, [inv.groups[name]["GroupId"]])
    if probe:
        inv.probes.update(_probes(ctx, inv))
    return inv


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


def _probe_client(ctx: Context):
    # A probe that fails says so at once; the full retry budget is for steps that must converge.
    return ctx.aws.session.client("apigateway", config=RETRY_CONFIG.merge(Config(retries={"mode": "standard",
                                                                                         "max_attempts": 2})))


PROBE_PATH = "runbook-probe"  # verify's request under the base path when the service has no health-check path


def _probes(ctx: Context, inv: Inventory) -> dict[str, dict]:
    """End-to-end requests; where the endpoint cannot serve them they are recorded as unavailable, not passed."""
    out: dict[str, dict] = {}
    resource = inv.probes.get("resource_id")
    if inv.api and resource:
        started = time.monotonic()
        try:
            result = _probe_client(ctx).test_invoke_method(restApiId=inv.api["id"], resourceId=resource["id"],
                                                           httpMethod="GET", pathWithQueryString="/",
                                                           stageVariables=(inv.stage or {}).get("variables", {}))
            out["test_invoke"] = {"status": result.get("status"), "ms": result.get("latency"),
                                  "log": (result.get("log") or "")[-300:]}
        except ClientError as exc:
            message = " ".join(str(exc.response["Error"].get("Message", "")).split())
            if "<html" in message.lower():  # an emulator's HTML error page says nothing useful
                message = "HTTP error page"
            out["test_invoke"] = {"unavailable": f"{exc.response['Error'].get('Code')}: {message[:120]}",
                                  "ms": round((time.monotonic() - started) * 1000)}
    domain, base_path = ctx.params.api.domain_name, ctx.params.api.base_path
    # A path the proxy resource serves: the API's root has no method, so API Gateway would answer it 403.
    path = (ctx.params.service.health_check_path or "").strip("/") or PROBE_PATH
    url = request_mod.url_for(domain, base_path, path)
    if (why := request_mod.resolvable(domain)) is not None:
        out["domain_request"] = {"unavailable": why, "url": url}
        return out
    out["domain_request"] = request_mod.send(domain, base_path, path, timeout=35)
    from vpclink_runbooks.context import record

    record("request", request_mod.record_of(out["domain_request"]))
    return out


# ---- checks: pure functions of the inventory ----------------------------------------------------------
# A check fails only for a fault on its own hop. When what it sees follows from a fault another check
# reports (targets unused because no listener forwards to their group, targets on a port because the task
# definition changed), it says `warn` and names that check, so the verdict names the hop to fix.

@dataclass
class Result:
    id: str
    hop: str
    status: str  # pass | fail | warn | skip
    detail: str
    remedy: str = ""


CHECKS: list[Callable[[Inventory], list[Result]]] = []


def check(fn: Callable[[Inventory], list[Result] | Result]) -> Callable:
    def run(inv: Inventory) -> list[Result]:
        out = fn(inv)
        return out if isinstance(out, list) else [out]

    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    CHECKS.append(run)
    return run


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


# -- mapping --

@check
def mapping_points_at_stage(inv: Inventory) -> Result:
    """The base path mapping on the shared custom domain serves our API's stage."""
    a = inv.params.api
    where = f"{a.domain_name}/{a.base_path}"
    if inv.mapping is None:
        return Result("mapping.exists", "mapping", "fail", f"no base path mapping {where}",
                      f"create the base path mapping {where} -> our API, stage {a.stage} (repair does)")
    api_id = (inv.api or {}).get("id")
    if inv.mapping["restApiId"] != api_id or inv.mapping.get("stage") != a.stage:
        return Result("mapping.target", "mapping", "fail",
                      f"{where} maps to API {inv.mapping['restApiId']} stage {inv.mapping.get('stage')}; "
                      f"expected API {api_id} stage {a.stage}",
                      f"point the mapping at API {api_id} stage {a.stage} (repair does, if the API it names "
                      "is ours)")
    return Result("mapping.target", "mapping", "pass", f"{where} -> API {api_id} stage {a.stage}")


# -- stage --

@check
def stage_deployed_with_link(inv: Inventory) -> list[Result]:
    """The stage exists, names our VPC link in its variable, and serves the current integration."""
    a = inv.params.api
    if inv.stage is None:
        return [Result("stage.exists", "stage", "fail", f"stage {a.stage} does not exist",
                       f"create a deployment to stage {a.stage} (repair does)")]
    out = []
    link_id = (inv.link or {}).get("id")
    value = inv.stage.get("variables", {}).get(STAGE_VARIABLE)
    if link_id is None:
        out.append(Result("stage.vpc_link_variable", "stage", "skip",
                          f"{STAGE_VARIABLE}={value}; there is no VPC link of ours to compare (see vpc_link.exists)"))
    elif value != link_id:
        said = "is missing" if value is None else f"is {value}"
        out.append(Result("stage.vpc_link_variable", "stage", "fail",
                          f"stage {a.stage} variable {STAGE_VARIABLE} {said}; our VPC link is {link_id}: API "
                          "Gateway answers 'Invalid VpcLink id referenced in integration'",
                          f"set the stage variable {STAGE_VARIABLE} to {link_id} (repair does)"))
    else:
        out.append(Result("stage.vpc_link_variable", "stage", "pass", f"{STAGE_VARIABLE}={value}"))
    if inv.integration is None:
        out.append(Result("stage.deployment_current", "stage", "skip", "no integration to compare the deployment "
                          "with (see integration.exists)"))
        return out
    deployed = (inv.deployment or {}).get("description", "")
    live = FINGERPRINT_PREFIX + fingerprint(inv.integration)
    if deployed != live:
        out.append(Result("stage.deployment_current", "stage", "fail",
                          f"stage {a.stage} serves deployment {inv.stage.get('deploymentId')} "
                          f"('{deployed or 'no description'}'), made before the integration last changed "
                          f"(now '{live}'): the change is not live",
                          f"deploy the API to stage {a.stage} (repair redeploys, or puts the integration back "
                          "to what params say)"))
    else:
        out.append(Result("stage.deployment_current", "stage", "pass",
                          f"deployment {inv.stage.get('deploymentId')} serves the current integration"))
    return out


# -- integration --

@check
def integration_reaches_listener(inv: Inventory) -> list[Result]:
    """ANY /{proxy+} is HTTP_PROXY over the VPC link to the NLB listener, with the default timeout."""
    integ = inv.integration
    if integ is None:
        return [Result("integration.exists", "integration", "fail", "no ANY integration on /{proxy+}",
                       "create the HTTP_PROXY integration over the VPC link (repair does)")]
    problems = []
    if integ.get("type") != "HTTP_PROXY" or integ.get("connectionType") != "VPC_LINK":
        problems.append(f"type {integ.get('type')} connection {integ.get('connectionType')}")
    conn = integ.get("connectionId")
    v2 = inv.params.vpc_link.version == 2
    allowed = ((inv.link or {}).get("id"),) if v2 else (f"${{stageVariables.{STAGE_VARIABLE}}}",
                                                         (inv.link or {}).get("id"))
    if conn not in allowed:
        problems.append(f"connectionId {conn}" + (f"; the V2 link is {(inv.link or {}).get('id')}" if v2 else ""))
    uri = urlparse(integ.get("uri", ""))
    if inv.lb and uri.hostname != inv.lb["DNSName"].lower():
        problems.append(f"uri host {uri.hostname} is not the NLB {inv.lb['DNSName']}")
    if uri.port != inv.params.listener_port:
        problems.append(f"uri port {uri.port}; the NLB listener is on {inv.params.listener_port}")
    out = []
    if problems:
        out.append(Result("integration.target", "integration", "fail", "; ".join(problems),
                          "put the integration back to HTTP_PROXY over the VPC link to the NLB listener, and "
                          "redeploy (repair does)"))
    else:
        out.append(Result("integration.target", "integration", "pass", f"HTTP_PROXY {integ['uri']} via {conn}"))
    if v2:
        target = integ.get("integrationTarget")
        lb_arn = (inv.lb or {}).get("LoadBalancerArn")
        if not target or (lb_arn and target != lb_arn):
            out.append(Result("integration.integration_target", "integration", "fail",
                              f"integrationTarget is {target or 'not set'}; a V2 VPC link needs the integration to "
                              f"name the load balancer ({lb_arn or inv.names.nlb}), or API Gateway has nowhere to send "
                              "requests",
                              "put the integration with integrationTarget = the load balancer ARN and redeploy "
                              "(repair does)"))
        else:
            out.append(Result("integration.integration_target", "integration", "pass",
                              f"integrationTarget {target.split('/')[-2]}/{target.split('/')[-1]}"))
    timeout = integ.get("timeoutInMillis")
    if timeout is None or int(timeout) == INTEGRATION_TIMEOUT_MS:
        out.append(Result("integration.timeout", "integration", "pass",
                          f"timeoutInMillis {timeout or INTEGRATION_TIMEOUT_MS}: a backend slower than "
                          f"{INTEGRATION_TIMEOUT_MS / 1000:g} s gets 504"))
    elif int(timeout) < INTEGRATION_TIMEOUT_MS:
        out.append(Result("integration.timeout", "integration", "fail",
                          f"timeoutInMillis {timeout}: requests slower than {int(timeout) / 1000:g} s get 504 "
                          f"(the runbook sets {INTEGRATION_TIMEOUT_MS})",
                          f"set the integration timeout back to {INTEGRATION_TIMEOUT_MS} ms (repair does)"))
    else:
        out.append(Result("integration.timeout", "integration", "warn",
                          f"timeoutInMillis {timeout}, above the {INTEGRATION_TIMEOUT_MS} ms default",
                          "keep it only if the account's integration timeout quota was raised"))
    return out


# -- VPC link --

@check
def vpc_link_available(inv: Inventory) -> list[Result]:
    """Our V1 VPC link is AVAILABLE and targets our NLB; the account is not at the link quota."""
    link = inv.link
    count = f"{inv.vpc_link_count} of {VPC_LINK_QUOTA} VPC links used in this region"
    if link is None:
        out = [Result("vpc_link.exists", "vpc_link", "fail", "no VPC link tagged for this environment",
                      "create the VPC link to our NLB (repair does)")]
        if inv.vpc_link_count >= VPC_LINK_QUOTA:
            out.append(Result("vpc_link.quota", "vpc_link", "fail", f"{count}: a new link cannot be created",
                              "share an existing NLB and link, delete an unused link, or request a quota increase"))
        return out
    if link.get("version") == 2:
        return _vpc_link_v2(inv, link)
    out = []
    if link.get("status") != "AVAILABLE":
        out.append(Result("vpc_link.status", "vpc_link", "fail",
                          f"VPC link {link['id']} is {link.get('status')}: {link.get('statusMessage', '')}",
                          "a link that is not AVAILABLE cannot carry requests: delete and recreate it once the NLB "
                          "is active (repair does)"))
    elif not inv.lb or link.get("targetArns") != [inv.lb["LoadBalancerArn"]]:
        out.append(Result("vpc_link.target", "vpc_link", "fail",
                          f"VPC link {link['id']} targets {link.get('targetArns')}; our NLB is "
                          f"{(inv.lb or {}).get('LoadBalancerArn', 'missing')}",
                          "recreate the VPC link targeting our NLB (repair does)"))
    else:
        out.append(Result("vpc_link.status", "vpc_link", "pass", f"{link['id']} AVAILABLE -> {inv.names.nlb}"))
    near = inv.vpc_link_count >= VPC_LINK_QUOTA - 2
    out.append(Result("vpc_link.quota", "vpc_link", "warn" if near else "pass", count,
                      "share NLBs and links or request a quota increase before the next service" if near else ""))
    return out


def _vpc_link_v2(inv: Inventory, link: dict) -> list[Result]:
    status = link.get("status")
    if status != "AVAILABLE":
        why = {"INACTIVE": "AWS deactivates a V2 link no integration used for 60 days",
               "FAILED": "its subnets or security group could not be used",
               "PENDING": "still provisioning its network interfaces"}.get(status, "")
        return [Result("vpc_link.status", "vpc_link", "fail" if status != "PENDING" else "warn",
                       f"VPC link V2 {link['id']} is {status}: {link.get('statusMessage', '')} ({why})",
                       "an INACTIVE or FAILED V2 link cannot carry requests: delete and recreate it (repair does)"
                       if status != "PENDING" else "verify again in a minute")]
    group = inv.groups.get(inv.names.link_security_group)
    out = [Result("vpc_link.status", "vpc_link", "pass", f"V2 {link['id']} AVAILABLE in {link.get('subnetIds')}")]
    if group is None or link.get("securityGroupIds") != [group["GroupId"]]:
        out.append(Result("vpc_link.security_group", "vpc_link", "fail",
                          f"VPC link V2 {link['id']} is in {link.get('securityGroupIds')}; the runbook's group "
                          f"{inv.names.link_security_group} is {(group or {}).get('GroupId', 'missing')}",
                          "recreate the link in the runbook's security group (repair does)"))
    else:
        out.append(Result("vpc_link.security_group", "vpc_link", "pass",
                          f"interfaces in {inv.names.link_security_group} ({group['GroupId']})"))
    return out


# -- NLB --

@check
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
    out.append(_nlb_security_groups(inv, lb))
    return out


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

@check
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


# -- target group --

@check
def target_group_port(inv: Inventory) -> Result:
    """The target group is TCP on the fixed host port with instance targets."""
    tg = _primary_tg(inv)
    p = inv.params
    if tg is None:
        return Result("target_group.exists", "target_group", "fail",
                      f"no target group {inv.names.target_group(p.target_port)}",
                      "create the target group (repair does)")
    protocol = "HTTP" if p.nlb.type == "application" else "TCP"
    ok = (tg["Protocol"] == protocol and tg["Port"] == p.target_port
          and tg["TargetType"] == ("ip" if p.awsvpc else "instance"))
    return Result("target_group.port", "target_group", "pass" if ok else "fail",
                  f"{tg['TargetGroupName']} {tg['Protocol']} :{tg['Port']} {tg['TargetType']} targets",
                  "" if ok else "a target group's port and type cannot change: destroy and apply again")


@check
def target_group_health_check(inv: Inventory) -> list[Result]:
    """Each target group's health-check port, protocol and path are what the runbook set."""
    ctx = SimpleNamespace(params=inv.params)
    names = {inv.names.target_group(port.host_port) for port in _exposed(inv)}
    out = []
    for tg in (t for t in inv.target_groups if t["TargetGroupName"] in names):
        drift = health_check_drift(ctx, tg)
        if not drift:
            out.append(Result("target_group.health_check", "target_group", "pass",
                              f"{tg['TargetGroupName']} health check {tg.get('HealthCheckProtocol')} on "
                              f"{tg.get('HealthCheckPort')}" + (f" {tg['HealthCheckPath']}"
                                                                if tg.get("HealthCheckProtocol") != "TCP" else "")))
            continue
        changed = ", ".join(f"{k.removeprefix('HealthCheck')} {cur} (runbook sets {want})"
                            for k, (cur, want) in drift.items())
        out.append(Result("target_group.health_check", "target_group", "fail",
                          f"{tg['TargetGroupName']} health check differs: {changed}",
                          "the NLB judges targets by a check the runbook did not set: `runbook repair --yes` "
                          "sets it back"))
    return out


# -- targets --

@check
def targets_healthy(inv: Inventory) -> list[Result]:
    """Every running task is registered; targets are healthy, on running instances, in enabled AZs."""
    tg = _primary_tg(inv)
    if tg is None:
        return [Result("targets.registered", "targets", "skip", "no target group (see target_group.exists)")]
    name, port = tg["TargetGroupName"], inv.params.target_port
    descs = inv.health.get(tg["TargetGroupArn"], [])
    registered = {(d["Target"]["Id"], d["Target"].get("Port")) for d in descs
                  if d["TargetHealth"]["State"] != "draining"}
    serving = serving_targets(inv)
    out = []

    # Every running task of ours must be a target, or the NLB never sends it traffic.
    if not serving:
        out.append(Result("targets.registered", "targets", "skip", "no running task of ours (see service.running)"))
    else:
        missing = sorted(serving - registered)
        if missing:
            shown = ", ".join(f"{i}:{p} ({_az(inv, i)})" for i, p in missing)
            out.append(Result("targets.registered", "targets", "fail",
                              f"running task(s) of ours on {shown} are not registered in {name} "
                              f"({len(serving) - len(missing)}/{len(serving)} registered)",
                              "register the running tasks' instance:hostPort in the target group (repair does)"))
        else:
            out.append(Result("targets.registered", "targets", "pass",
                              f"{len(serving)} running task(s) registered in {name}"))

    # A target on another port: explained by a task definition that changed the host port, else a stray.
    # Only a fixed host port makes "another port" wrong; dynamic ports and IP targets each have their own.
    elsewhere = sorted((i, p) for i, p in registered if p != port) if inv.params.fixed_host_port else []
    if elsewhere:
        shown = ", ".join(f"{i}:{p}" for i, p in elsewhere)
        if _task_host_port_wrong(inv):
            out.append(Result("targets.port", "targets", "warn",
                              f"targets {shown} follow the task definition's hostPort, not {port}",
                              "follows from task_definition.ports"))
        else:
            out.append(Result("targets.port", "targets", "fail",
                              f"targets {shown} registered in {name} on a port other than {port}",
                              f"deregister them; only instance:{port} targets belong here (repair does)"))

    stopped = sorted({i for i, _ in registered if _instance_state(inv, i) != "running"})
    if stopped:
        shown = ", ".join(f"{i} ({_az(inv, i)}) is {_instance_state(inv, i)}" for i in stopped)
        out.append(Result("targets.instances_running", "targets", "fail",
                          f"{shown}: its target fails health checks",
                          "start the instance, or let its Auto Scaling group replace it; cluster instances are "
                          "not the runbook's to change"))

    outside = sorted({_az(inv, i) for i, _ in registered} - _nlb_azs(inv) - {"?"}) if inv.lb else []
    if outside:
        out.append(Result("targets.az_enabled", "targets", "fail",
                          f"targets in {outside}, where the NLB has no subnet: they stay unused (Target.NotInUse)",
                          "add a subnet of that AZ to the NLB (repair does)"))

    judged = [d for d in descs if d["TargetHealth"]["State"] != "draining"
              and _instance_state(inv, d["Target"]["Id"]) == "running"
              and _az(inv, d["Target"]["Id"]) not in outside]
    bad = [d for d in judged if d["TargetHealth"]["State"] != "healthy"]
    if not judged:
        return out
    text = " ".join(f"{d['Target']['Id']}:{d['Target'].get('Port')} {d['TargetHealth']['State']}"
                    f" ({d['TargetHealth'].get('Reason', '')})" for d in bad)
    summary = f"{len(judged) - len(bad)}/{len(judged)} healthy"
    if not bad:
        azs = sorted({_az(inv, d["Target"]["Id"]) for d in judged})
        where = (f"port {port}" if inv.params.fixed_host_port else "IP targets" if inv.params.awsvpc
                 else "dynamic host ports")
        out.append(Result("targets.healthy", "targets", "pass", f"{summary} on {where} in {azs}"))
    elif not tg.get("LoadBalancerArns"):
        out.append(Result("targets.healthy", "targets", "warn",
                          f"{summary}: no listener forwards to {name}, so its targets are unused: {text}",
                          "follows from the listener check"))
    elif _unadmitted(inv):
        out.append(Result("targets.healthy", "targets", "warn", f"{summary}: {text}",
                          "follows from security_group.nlb_subnets"))
    elif _task_host_port_wrong(inv) and all(d["Target"].get("Port") != port for d in bad):
        out.append(Result("targets.healthy", "targets", "warn", f"{summary}: {text}",
                          "follows from task_definition.ports"))
    elif all(d["TargetHealth"]["State"] == "initial" for d in bad):
        out.append(Result("targets.healthy", "targets", "warn", f"{summary}: {text}",
                          "health checks are still starting; verify again in a minute"))
    else:
        out.append(Result("targets.healthy", "targets", "fail", f"{summary}: {text}",
                          f"nothing answers on port {port}: read the task's logs and check that the container "
                          f"listens on {inv.params.service.container_port}"))
    return out


# -- task definition --

@check
def task_definition_ports(inv: Inventory) -> Result:
    """The service's task definition is bridge mode with hostPort H -> containerPort C."""
    td = inv.task_definition
    s = inv.params.service
    if td is None:
        return Result("task_definition.ports", "task_definition", "skip", "no service, so no task definition "
                      "(see service.running)")
    main = _main_mapping(inv)
    tg = _primary_tg(inv)
    problems = []
    p = inv.params
    if td.get("networkMode") != s.network_mode:
        problems.append(f"networkMode {td.get('networkMode')}, not {s.network_mode}")
    if main is None:
        problems.append(f"no mapping for containerPort {s.container_port}")
    elif not p.fixed_host_port:
        if (main.get("hostPort") or 0) != _expected_host_port(p):
            problems.append(f"hostPort {main.get('hostPort')}; expected {_expected_host_port(p)}")
    elif main.get("hostPort") != s.host_port:
        where = f"target group {tg['TargetGroupName']} is on port {tg['Port']}" if tg else "no target group"
        problems.append(f"hostPort {main.get('hostPort')} -> containerPort {s.container_port}; {where} and params "
                        f"say host_port {s.host_port}")
    name = f"{td['family']}:{td['revision']}"
    if problems:
        return Result("task_definition.ports", "task_definition", "fail", f"{name}: " + "; ".join(problems),
                      f"register a task definition with hostPort {s.host_port} -> {s.container_port} in bridge mode "
                      "and redeploy the service (repair does)")
    return Result("task_definition.ports", "task_definition", "pass",
                  f"{name} {s.network_mode} hostPort {_expected_host_port(p)} -> containerPort {s.container_port}")


# -- security group --

@check
def security_group_admits_nlb(inv: Inventory) -> list[Result]:
    """Instance security groups admit the host port from the NLB subnets, and nothing from everywhere."""
    s = inv.params.service
    if inv.params.awsvpc:
        return _task_group(inv)
    if inv.params.dynamic_host_ports:
        return _alb_to_instances(inv)
    out = []
    running = [i for i, inst in inv.instances.items() if inst.get("State", {}).get("Name") == "running"]
    if not running or not inv.subnets:
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


# -- service --

@check
def service_running(inv: Inventory) -> list[Result]:
    """The service runs desired_count tasks behind our target group and can roll a deployment."""
    svc = inv.service
    if svc is None:
        return [Result("service.running", "service", "fail", f"ECS service {inv.names.ecs_service} not found",
                       "create the service (repair does)")]
    p = inv.params
    desired = p.service.desired_count
    out = []
    if svc["runningCount"] < desired or svc["desiredCount"] != desired:
        out.append(Result("service.running", "service", "fail",
                          f"running {svc['runningCount']}/{svc['desiredCount']} (params desired_count {desired})",
                          "set the desired count and let ECS place the tasks (repair does)"))
    else:
        out.append(Result("service.running", "service", "pass", f"running {svc['runningCount']}/{desired}"))

    stuck = _placement_trouble(svc)
    if stuck:
        out.append(Result("service.placement", "service", "fail", f"ECS says: {stuck}",
                          "a fixed host port allows one task per instance: keep desired_count <= instances with "
                          "the port free, free the port on the instance, or add an instance"))
    else:
        out.append(Result("service.placement", "service", "pass", "no placement failures since the last steady "
                          "state"))

    config = svc.get("deploymentConfiguration", {})
    minimum, maximum = config.get("minimumHealthyPercent", 100), config.get("maximumPercent", 200)
    capacity = len(placeable_instances(SimpleNamespace(params=p), inv.world)) if inv.world else desired
    problem = rollout_problem(desired, capacity, minimum, maximum) if p.fixed_host_port else None
    if problem:
        out.append(Result("service.deployment", "service", "fail", f"deployment configuration {minimum}-{maximum}%: "
                          + problem.split(": a new task")[0] + ": the next deployment stalls",
                          f"set minimumHealthyPercent {p.minimum_healthy_percent} and maximumPercent "
                          f"{p.maximum_percent} as params say (repair does)"))
    else:
        out.append(Result("service.deployment", "service", "pass",
                          f"deployment {minimum}-{maximum}% can replace tasks on {capacity} instance(s) with the "
                          "host port free" if p.fixed_host_port else
                          f"deployment {minimum}-{maximum}%: no fixed host port, tasks do not compete for one"))

    tg = _primary_tg(inv)
    lbs = svc.get("loadBalancers", [])
    ours = [lb for lb in lbs if tg and lb.get("targetGroupArn") == tg["TargetGroupArn"]]
    if tg is None:
        pass
    elif not ours or ours[0].get("containerPort") != p.service.container_port:
        shown = [f"{lb.get('targetGroupArn', '').split('/')[-2] if '/' in lb.get('targetGroupArn', '') else '?'}:"
                 f"{lb.get('containerPort')}" for lb in lbs]
        out.append(Result("service.load_balancer", "service", "fail",
                          f"the service registers {shown or 'nothing'}; expected {tg['TargetGroupName']}:"
                          f"{p.service.container_port}",
                          "update the service's load balancer to our target group and container port (repair does)"))
    else:
        out.append(Result("service.load_balancer", "service", "pass",
                          f"registers {p.service.name}:{p.service.container_port} in {tg['TargetGroupName']}"))
    return out


UNASSUMABLE_ROLE = "ECS was unable to assume the role"


@check
def tasks_start(inv: Inventory) -> list[Result]:
    """The service's tasks start: ECS can assume the execution role, resolve the secrets and pull the image."""
    svc, td = inv.service, inv.task_definition or {}
    if svc is None:
        return [Result("task_definition.starts", "task_definition", "skip", "no ECS service: no task to start")]
    name = (svc.get("taskDefinition") or "").split("/")[-1]
    role = _since_steady(svc, lambda m: UNASSUMABLE_ROLE in m)
    if role:
        return [Result("task_definition.starts", "task_definition", "fail",
                       f"no task of {name} starts: the execution role {td.get('executionRoleArn')}: ECS says: {role}",
                       "create that role trusting ecs-tasks.amazonaws.com (with AmazonECSTaskExecutionRolePolicy) "
                       "or fix it in IAM; the runbook does not create IAM roles")]
    failed = sorted((t for t in inv.stopped_tasks if t["task_definition"] == name
                     and t.get("stop_code") == "TaskFailedToStart"), key=lambda t: str(t.get("created_at")))
    started = [str(t.get("created_at")) for t in inv.tasks if t["task_definition"] == name
               and t["last_status"] == "RUNNING"]
    if not failed or (started and max(started) > str(failed[-1].get("created_at"))):
        return [Result("task_definition.starts", "task_definition", "pass", f"no task of {name} failed to start")]
    reason = failed[-1].get("stopped_reason") or ""
    containers = td.get("containerDefinitions", [])
    secrets = [s["valueFrom"] for c in containers for s in c.get("secrets") or [] if s["valueFrom"] in reason]
    images = [c["image"] for c in containers if c.get("image") and c["image"] in reason]
    what, remedy = "", "fix what ECS says and apply again"
    if secrets:
        what = f"secret {', '.join(secrets)} cannot be resolved: "
        remedy = ("create the secret (SSM parameter or Secrets Manager secret) in this account and region, or fix "
                  "service.secrets and apply; the runbook does not create secrets")
    elif images:
        what = f"image {images[0]} cannot be pulled: "
        remedy = "push that image (repository and tag) to ECR, or fix service.image and apply"
    return [Result("task_definition.starts", "task_definition", "fail",
                   f"{what}{len(failed)} task(s) of {name} stopped before starting; ECS says: {reason}", remedy)]


def _since_steady(service: dict, match: Callable[[str], bool]) -> str | None:
    """The newest service event `match` accepts, if it came after the service's last steady state."""
    for event in service.get("events", []):  # newest first
        message = event.get("message", "")
        if "has reached a steady state" in message:
            return None
        if match(message):
            return message
    return None


def _placement_trouble(service: dict) -> str | None:
    """The newest 'unable to place' event, if it came after the service's last steady state."""
    for event in service.get("events", []):  # newest first
        message = event.get("message", "")
        if "has reached a steady state" in message:
            return None
        if "unable to place a task" in message or "already using a port required" in message:
            return message
    return None


# -- endpoint --

@check
def end_to_end(inv: Inventory) -> list[Result]:
    """A request through the API (TestInvokeMethod) and through the custom domain, where the endpoint serves them."""
    out = []
    probe = inv.probes.get("test_invoke")
    if probe is None:
        out.append(Result("endpoint.test_invoke", "endpoint", "skip", "not probed (no API method to invoke yet, or "
                          "probes off)"))
    elif "unavailable" in probe:
        out.append(Result("endpoint.test_invoke", "endpoint", "skip",
                          f"TestInvokeMethod is not served by this endpoint ({probe['unavailable']})"))
    else:
        ok = probe.get("status") is not None and int(probe["status"]) < 500
        out.append(Result("endpoint.test_invoke", "endpoint", "pass" if ok else "fail",
                          f"TestInvokeMethod GET / -> {probe.get('status')} in {probe.get('ms')} ms",
                          "" if ok else f"read the test-invoke log: {probe.get('log', '')}"))
    request = inv.probes.get("domain_request")
    if request is None:
        out.append(Result("endpoint.custom_domain", "endpoint", "skip", "not probed"))
    elif "unavailable" in request:
        out.append(Result("endpoint.custom_domain", "endpoint", "skip", request["unavailable"]))
    else:
        # The chain works when the service answered: any status without API Gateway's x-amzn-ErrorType.
        ok = bool(request.get("service_answered"))
        by = f" by task {request['answered_by']}" if request.get("answered_by") else ""
        answer = request.get("status") or request.get("error")
        if ok:
            detail = f"GET {request['url']} -> {answer} answered by the service{by} in {request.get('ms')} ms"
        else:
            detail = (f"GET {request['url']} -> {answer} decided at hop {request.get('hop')}"
                      + (f" ({request['error_type']})" if request.get("error_type") else "")
                      + f" in {request.get('ms')} ms")
        out.append(Result("endpoint.custom_domain", "endpoint", "pass" if ok else "fail", detail,
                          "" if ok else _request_remedy(request)))
    return out


def _request_remedy(request: dict) -> str:
    hop, status = request.get("hop"), request.get("status")
    if hop and hop not in ("endpoint", "network", "service"):
        return f"fix hop {hop} (its check above says how), then `runbook request` again"
    if status == 403:
        return "403 from API Gateway: the base path mapping is missing or points elsewhere"
    if status is None:
        return "no HTTP answer: check DNS of the custom domain and the network path to it"
    return "API Gateway answered instead of the service: follow the failing hop above"


# ---- results ---------------------------------------------------------------------------------------------

def run_checks(inv: Inventory) -> list[Result]:
    return [result for fn in CHECKS for result in fn(inv)]


def table(results: list[Result]) -> pd.DataFrame:
    return pd.DataFrame([r.__dict__ for r in results], columns=["id", "hop", "status", "detail", "remedy"])


def failed(results: list[Result]) -> list[Result]:
    return [r for r in results if r.status == "fail"]


def first_broken_hop(results: list[Result]) -> str | None:
    broken = {r.hop for r in failed(results)}
    return next((hop for hop in HOPS if hop in broken), None)


@dataclass
class Verdict:
    """The one line an operator reads first: verified, or the first broken hop with what to do."""

    ok: bool
    headline: str
    hop: str | None = None
    detail: str = ""
    remedy: str = ""
    others: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.ok:
            return self.headline
        return f"{self.headline}: {self.detail}. Remedy: {self.remedy}"

    def __repr__(self) -> str:
        lines = [str(self)] + [f"  also failing: {o}" for o in self.others]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour, fill = ("#137333", "#e6f4ea") if self.ok else ("#a50e0e", "#fce8e6")
        body = [f'<div style="font-size:1.35em;font-weight:bold">{html.escape(self.headline)}</div>']
        if self.detail:
            body.append(f'<div style="margin-top:6px">{html.escape(self.detail)}</div>')
        if self.remedy:
            body.append(f'<div style="margin-top:6px"><b>Remedy:</b> {html.escape(self.remedy)}</div>')
        if self.others:
            items = "".join(f"<li>{html.escape(o)}</li>" for o in self.others)
            body.append(f'<div style="margin-top:6px">Also failing:<ul style="margin:2px 0">{items}</ul></div>')
        return (f'<div class="vpclink-verdict" style="border:3px solid {colour};background:{fill};color:{colour};'
                f'padding:12px 16px;border-radius:8px;margin:4px 0">{"".join(body)}</div>')


def verdict(results: list[Result]) -> Verdict:
    bad = failed(results)
    if not bad:
        skipped = [r for r in results if r.status == "skip"]
        warned = sum(r.status == "warn" for r in results)
        notes = f"{len(skipped)} skipped" + (f", {warned} warning(s)" if warned else "") + ", reasons in the table"
        return Verdict(True, f"VERIFIED: all {len(results) - len(skipped)} checks pass ({notes})")
    hop = first_broken_hop(results)
    first = next(r for r in bad if r.hop == hop)
    others = [f"{r.id} ({r.hop}): {r.detail}" for r in bad if r is not first]
    return Verdict(False, f"BROKEN at hop '{hop}' ({first.id})", hop, first.detail, first.remedy, others)


def save(results: list[Result]) -> Verdict:
    """Hand the results to the runner (run.json checks) and return the verdict."""
    from vpclink_runbooks.context import record

    record("checks", [r.__dict__ for r in results])
    return verdict(results)
