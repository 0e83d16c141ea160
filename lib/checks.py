"""Verify: fetch the live chain once into an inventory, then run pure checks hop by hop."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlparse

import pandas as pd
from botocore.config import Config
from botocore.exceptions import ClientError

from .aws import RETRY_CONFIG
from .context import Context
from .ecs_service import find_service, owned_rules
from .loadbalancer import exposed_ports, find_load_balancer, owned_target_groups
from .routes import FINGERPRINT_PREFIX, PROXY_PATH, STAGE_VARIABLE, find_rest_api, fingerprint
from .vpclink import find_link

PERMISSIONS = ["apigateway:GET", "apigateway:POST", "elasticloadbalancing:DescribeLoadBalancers",
               "elasticloadbalancing:DescribeTags", "elasticloadbalancing:DescribeLoadBalancerAttributes",
               "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:DescribeTargetGroups",
               "elasticloadbalancing:DescribeTargetHealth", "ecs:DescribeServices", "ecs:DescribeTaskDefinition",
               "ecs:ListTasks", "ecs:DescribeTasks", "ec2:DescribeSecurityGroupRules", "ec2:DescribeSubnets",
               "ec2:DescribeInstances"]
HOPS = ["mapping", "stage", "integration", "vpc_link", "nlb", "listener", "target_group", "targets",
        "task_definition", "security_group", "service", "endpoint"]


@dataclass
class Inventory:
    """Everything verify looks at, fetched once; checks read it and call nothing."""

    params: object
    names: object
    mapping: dict | None = None
    api: dict | None = None
    stage: dict | None = None
    deployment: dict | None = None
    integration: dict | None = None
    link: dict | None = None
    lb: dict | None = None
    cross_zone: bool | None = None
    listeners: list[dict] = field(default_factory=list)
    target_groups: list[dict] = field(default_factory=list)
    health: dict[str, list[dict]] = field(default_factory=dict)
    subnets: dict[str, dict] = field(default_factory=dict)
    instances: dict[str, dict] = field(default_factory=dict)
    service: dict | None = None
    task_definition: dict | None = None
    rules: list[dict] = field(default_factory=list)
    all_rules: list[dict] = field(default_factory=list)
    probes: dict[str, dict] = field(default_factory=dict)


def _ignore_missing(call: Callable, *codes: str):
    try:
        return call()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in codes:
            return None
        raise


def fetch(ctx: Context, *, probe: bool = True) -> Inventory:
    aws, p = ctx.aws, ctx.params
    gw = aws.apigateway
    inv = Inventory(params=p, names=ctx.names)
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
        subnet_ids = [az["SubnetId"] for az in inv.lb.get("AvailabilityZones", [])]
        if subnet_ids:
            inv.subnets = {s["SubnetId"]: s for s in aws.ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]}
    inv.target_groups = owned_target_groups(ctx)
    for tg in inv.target_groups:
        inv.health[tg["TargetGroupArn"]] = aws.elbv2.describe_target_health(
            TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
    target_ids = sorted({d["Target"]["Id"] for descs in inv.health.values() for d in descs})
    if target_ids:
        inv.instances = {i["InstanceId"]: i for r in aws.ec2.describe_instances(InstanceIds=target_ids)["Reservations"]
                         for i in r["Instances"]}
    inv.service = find_service(ctx)
    if inv.service:
        inv.task_definition = aws.ecs.describe_task_definition(
            taskDefinition=inv.service["taskDefinition"])["taskDefinition"]
    group_ids = sorted({g["GroupId"] for i in inv.instances.values() for g in i.get("SecurityGroups", [])})
    for group_id in group_ids:
        inv.rules += owned_rules(ctx, group_id)
        inv.all_rules += [r for page in aws.ec2.get_paginator("describe_security_group_rules").paginate(
            Filters=[{"Name": "group-id", "Values": [group_id]}]) for r in page["SecurityGroupRules"]
            if not r["IsEgress"]]
    if probe:
        inv.probes.update(_probes(ctx, inv))
    return inv


def _probe_client(ctx: Context):
    # A probe that fails says so at once; the full retry budget is for steps that must converge.
    return ctx.aws.session.client("apigateway", config=RETRY_CONFIG.merge(Config(retries={"mode": "standard",
                                                                                         "max_attempts": 2})))


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
            out["test_invoke"] = {"unavailable": f"{exc.response['Error'].get('Code')}: "
                                  f"{str(exc.response['Error'].get('Message', ''))[:120]}",
                                  "ms": round((time.monotonic() - started) * 1000)}
    url = f"https://{ctx.params.api.domain_name}/{ctx.params.api.base_path}/"
    try:
        socket.getaddrinfo(ctx.params.api.domain_name, 443)
    except OSError as exc:
        out["domain_request"] = {"unavailable": f"{ctx.params.api.domain_name} does not resolve here ({exc})",
                                 "url": url}
        return out
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            out["domain_request"] = {"status": response.status, "url": url}
    except urllib.error.HTTPError as exc:
        out["domain_request"] = {"status": exc.code, "url": url}
    except (urllib.error.URLError, OSError) as exc:
        out["domain_request"] = {"status": None, "error": str(exc), "url": url}
    out["domain_request"]["ms"] = round((time.monotonic() - started) * 1000)
    return out


# ---- checks: pure functions of the inventory ----------------------------------------------------------

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
    CHECKS.append(run)
    return run


def _primary_tg(inv: Inventory) -> dict | None:
    name = inv.names.target_group(inv.params.service.host_port)
    return next((t for t in inv.target_groups if t["TargetGroupName"] == name), None)


@check
def mapping_points_at_stage(inv: Inventory) -> Result:
    a = inv.params.api
    where = f"{a.domain_name}/{a.base_path}"
    if inv.mapping is None:
        return Result("mapping.exists", "mapping", "fail", f"no base path mapping {where}",
                      "create the base path mapping (apply or repair)")
    if not inv.api or inv.mapping["restApiId"] != inv.api["id"] or inv.mapping.get("stage") != a.stage:
        return Result("mapping.target", "mapping", "fail",
                      f"{where} maps to API {inv.mapping['restApiId']} stage {inv.mapping.get('stage')}; expected "
                      f"API {(inv.api or {}).get('id')} stage {a.stage}", "point the mapping at our API and stage")
    return Result("mapping.target", "mapping", "pass", f"{where} -> API {inv.api['id']} stage {a.stage}")


@check
def stage_deployed_with_link(inv: Inventory) -> list[Result]:
    a = inv.params.api
    if inv.stage is None:
        return [Result("stage.exists", "stage", "fail", f"stage {a.stage} does not exist", "create a deployment")]
    out = []
    link_id = (inv.link or {}).get("id")
    value = inv.stage.get("variables", {}).get(STAGE_VARIABLE)
    if value != link_id:
        out.append(Result("stage.vpc_link_variable", "stage", "fail",
                          f"stage {a.stage} variable {STAGE_VARIABLE}={value}; our VPC link is {link_id}",
                          f"set the stage variable {STAGE_VARIABLE} to {link_id}"))
    else:
        out.append(Result("stage.vpc_link_variable", "stage", "pass", f"{STAGE_VARIABLE}={value}"))
    deployed = (inv.deployment or {}).get("description", "")
    live = FINGERPRINT_PREFIX + fingerprint(inv.integration or {})
    if deployed != live:
        out.append(Result("stage.deployment_current", "stage", "fail",
                          f"stage {a.stage} serves deployment '{deployed or '?'}' but the integration is now '{live}'",
                          "create a deployment so the stage serves the current integration"))
    else:
        out.append(Result("stage.deployment_current", "stage", "pass", "stage serves the current integration"))
    return out


@check
def integration_reaches_listener(inv: Inventory) -> Result:
    integ = inv.integration
    if integ is None:
        return Result("integration.exists", "integration", "fail", "no ANY integration on /{proxy+}",
                      "create the HTTP_PROXY integration")
    problems = []
    if integ.get("type") != "HTTP_PROXY" or integ.get("connectionType") != "VPC_LINK":
        problems.append(f"type {integ.get('type')} connection {integ.get('connectionType')}")
    conn = integ.get("connectionId")
    if conn not in (f"${{stageVariables.{STAGE_VARIABLE}}}", (inv.link or {}).get("id")):
        problems.append(f"connectionId {conn}")
    uri = urlparse(integ.get("uri", ""))
    if inv.lb and uri.hostname != inv.lb["DNSName"].lower():
        problems.append(f"uri host {uri.hostname} is not the NLB {inv.lb['DNSName']}")
    if uri.port != inv.params.listener_port:
        problems.append(f"uri port {uri.port}; listener port is {inv.params.listener_port}")
    if problems:
        return Result("integration.target", "integration", "fail", "; ".join(problems),
                      "put the integration back to HTTP_PROXY over the VPC link to the NLB listener, then redeploy")
    return Result("integration.target", "integration", "pass", f"HTTP_PROXY {integ['uri']} via {conn}")


@check
def vpc_link_available(inv: Inventory) -> Result:
    link = inv.link
    if link is None:
        return Result("vpc_link.exists", "vpc_link", "fail", "no VPC link tagged for this environment",
                      "create the VPC link")
    if link.get("status") != "AVAILABLE":
        return Result("vpc_link.status", "vpc_link", "fail",
                      f"VPC link {link['id']} is {link.get('status')}: {link.get('statusMessage', '')}",
                      "delete and recreate the VPC link once the NLB is active")
    if not inv.lb or link.get("targetArns") != [inv.lb["LoadBalancerArn"]]:
        return Result("vpc_link.target", "vpc_link", "fail", f"VPC link {link['id']} targets {link.get('targetArns')}",
                      "recreate the VPC link targeting our NLB")
    return Result("vpc_link.status", "vpc_link", "pass", f"{link['id']} AVAILABLE -> {inv.names.nlb}")


@check
def nlb_active_internal(inv: Inventory) -> list[Result]:
    lb = inv.lb
    if lb is None:
        return [Result("nlb.exists", "nlb", "fail", f"NLB {inv.names.nlb} not found", "create the NLB")]
    out = []
    ok = lb["State"]["Code"] == "active" and lb["Scheme"] == "internal" and lb["Type"] == "network"
    out.append(Result("nlb.state", "nlb", "pass" if ok else "fail",
                      f"{lb['LoadBalancerName']} {lb['Type']} {lb['Scheme']} {lb['State']['Code']}",
                      "" if ok else "the NLB must be an active, internal network load balancer"))
    azs_with_healthy = _healthy_azs(inv)
    nlb_azs = sorted({az["ZoneName"] for az in lb.get("AvailabilityZones", [])})
    empty = [az for az in nlb_azs if az not in azs_with_healthy]
    if inv.cross_zone:
        out.append(Result("nlb.cross_zone", "nlb", "pass", "cross-zone load balancing on"))
    elif empty:
        out.append(Result("nlb.cross_zone", "nlb", "fail",
                          f"cross-zone load balancing off and AZ(s) {empty} have no healthy target",
                          "turn cross-zone load balancing on (or run a target in each AZ)"))
    else:
        out.append(Result("nlb.cross_zone", "nlb", "warn", "cross-zone load balancing off",
                          "turn it on so losing one AZ's targets does not fail requests"))
    return out


def _healthy_azs(inv: Inventory) -> set[str]:
    azs = set()
    for descs in inv.health.values():
        for d in descs:
            inst = inv.instances.get(d["Target"]["Id"], {})
            if d["TargetHealth"]["State"] == "healthy":
                azs.add(inst.get("Placement", {}).get("AvailabilityZone", "?"))
    return azs


@check
def listener_forwards_to_host_port(inv: Inventory) -> list[Result]:
    out = []
    groups = {t["TargetGroupArn"]: t for t in inv.target_groups}
    for port in exposed_ports_of(inv):
        listener = next((li for li in inv.listeners if li["Port"] == port.listener_port), None)
        if listener is None:
            out.append(Result(f"listener.{port.listener_port}", "listener", "fail",
                              f"no listener on port {port.listener_port} (listeners: "
                              f"{sorted(li['Port'] for li in inv.listeners)})",
                              f"create a TCP listener on {port.listener_port}"))
            continue
        arns = [a.get("TargetGroupArn") for a in listener.get("DefaultActions", [])]
        tg = groups.get(arns[0]) if arns else None
        if tg is None or tg["Port"] != port.host_port:
            out.append(Result(f"listener.{port.listener_port}", "listener", "fail",
                              f"listener {port.listener_port} forwards to "
                              f"{tg['TargetGroupName'] + ' on port ' + str(tg['Port']) if tg else arns}; "
                              f"task hostPort is {port.host_port}",
                              f"forward the listener to {inv.names.target_group(port.host_port)}"))
        else:
            out.append(Result(f"listener.{port.listener_port}", "listener", "pass",
                              f"TCP {port.listener_port} -> {tg['TargetGroupName']} :{tg['Port']}"))
    return out


def exposed_ports_of(inv: Inventory):
    class _Ctx:  # exposed_ports needs only params
        params = inv.params

    return exposed_ports(_Ctx)


@check
def target_group_port(inv: Inventory) -> Result:
    tg = _primary_tg(inv)
    if tg is None:
        return Result("target_group.exists", "target_group", "fail",
                      f"no target group {inv.names.target_group(inv.params.service.host_port)}",
                      "create the target group on the host port")
    ok = tg["Protocol"] == "TCP" and tg["Port"] == inv.params.service.host_port and tg["TargetType"] == "instance"
    return Result("target_group.port", "target_group", "pass" if ok else "fail",
                  f"{tg['TargetGroupName']} {tg['Protocol']} :{tg['Port']} {tg['TargetType']} targets",
                  "" if ok else "recreate the target group as TCP on the host port with instance targets")


@check
def targets_healthy(inv: Inventory) -> list[Result]:
    tg = _primary_tg(inv)
    if tg is None:
        return [Result("targets.healthy", "targets", "fail", "no target group", "create it")]
    descs = inv.health.get(tg["TargetGroupArn"], [])
    desired = inv.params.service.desired_count
    bad = [f"{d['Target']['Id']}:{d['Target'].get('Port')} {d['TargetHealth']['State']}"
           f" ({d['TargetHealth'].get('Reason', '')})" for d in descs if d["TargetHealth"]["State"] != "healthy"]
    healthy = len(descs) - len(bad)
    wrong_port = [d["Target"]["Id"] for d in descs if d["Target"].get("Port") != inv.params.service.host_port]
    out = []
    if bad:
        reasons = " ".join(bad)
        remedy = ("add the AZ's subnet to the NLB" if "NotInUse" in reasons else
                  "start the instance or let ECS replace the task" if "unhealthy" in reasons else
                  "check the security group rule and that the container listens on its port")
        out.append(Result("targets.healthy", "targets", "fail", f"{healthy}/{len(descs)} healthy: {reasons}", remedy))
    elif healthy < desired:
        out.append(Result("targets.healthy", "targets", "fail",
                          f"{healthy} healthy target(s) registered, desired_count is {desired}",
                          "redeploy the service so its tasks register in the target group"))
    else:
        out.append(Result("targets.healthy", "targets", "pass", f"{healthy}/{desired} targets healthy on port "
                          f"{inv.params.service.host_port}"))
    if wrong_port:
        out.append(Result("targets.port", "targets", "fail", f"targets {wrong_port} registered on another port",
                          "redeploy the service"))
    if inv.lb:
        nlb_azs = {az["ZoneName"] for az in inv.lb.get("AvailabilityZones", [])}
        target_azs = {inv.instances.get(d["Target"]["Id"], {}).get("Placement", {}).get("AvailabilityZone")
                      for d in descs}
        outside = sorted(a for a in target_azs - nlb_azs if a)
        if outside:
            out.append(Result("targets.az_enabled", "targets", "fail",
                              f"targets in {outside}, where the NLB has no subnet", "add that AZ's subnet to the NLB"))
    return out


@check
def task_definition_ports(inv: Inventory) -> Result:
    td = inv.task_definition
    s = inv.params.service
    if td is None:
        return Result("task_definition.ports", "task_definition", "fail", "the service has no task definition",
                      "create the service")
    mappings = [m for c in td.get("containerDefinitions", []) for m in c.get("portMappings", [])]
    main = next((m for m in mappings if m["containerPort"] == s.container_port), None)
    lb_ports = [lb["containerPort"] for lb in (inv.service or {}).get("loadBalancers", [])]
    problems = []
    if td.get("networkMode") != "bridge":
        problems.append(f"networkMode {td.get('networkMode')}")
    if main is None:
        problems.append(f"no mapping for containerPort {s.container_port}")
    elif main.get("hostPort") != s.host_port:
        problems.append(f"hostPort {main.get('hostPort')} -> {s.container_port}; params say {s.host_port}")
    if s.container_port not in lb_ports:
        problems.append(f"service loadBalancers containerPort {lb_ports}; expected {s.container_port}")
    name = f"{td['family']}:{td['revision']}"
    if problems:
        return Result("task_definition.ports", "task_definition", "fail", f"{name}: " + "; ".join(problems),
                      "register a task definition with the fixed host port and redeploy")
    return Result("task_definition.ports", "task_definition", "pass",
                  f"{name} bridge hostPort {s.host_port} -> containerPort {s.container_port}")


@check
def security_group_admits_nlb(inv: Inventory) -> list[Result]:
    s = inv.params.service
    cidrs = sorted(sub["CidrBlock"] for sub in inv.subnets.values())
    out = []
    admitted = {r.get("CidrIpv4") for r in inv.all_rules
                if r.get("IpProtocol") in ("tcp", "-1") and r.get("FromPort", -1) <= s.host_port <= r.get("ToPort", -1)
                or r.get("IpProtocol") == "-1"}
    missing = [c for c in cidrs if c not in admitted]
    if not inv.instances:
        out.append(Result("security_group.nlb_subnets", "security_group", "skip",
                          "no registered targets to inspect the security group of"))
    elif missing:
        out.append(Result("security_group.nlb_subnets", "security_group", "fail",
                          f"no ingress on tcp:{s.host_port} from NLB subnet(s) {missing}",
                          f"add ingress tcp:{s.host_port} from {missing} to the instance security group"))
    else:
        out.append(Result("security_group.nlb_subnets", "security_group", "pass",
                          f"tcp:{s.host_port} admitted from {cidrs}"))
    wide = [r for r in inv.all_rules if r.get("CidrIpv4") == "0.0.0.0/0" and (
        r.get("IpProtocol") == "-1" or r.get("FromPort", -1) <= s.host_port <= r.get("ToPort", -1))]
    if wide:
        out.append(Result("security_group.no_wide_rule", "security_group", "fail",
                          f"{wide[0]['GroupId']} admits tcp:{s.host_port} from 0.0.0.0/0",
                          "remove the 0.0.0.0/0 rule; only the NLB subnets need the host port"))
    return out


@check
def service_running(inv: Inventory) -> Result:
    svc = inv.service
    if svc is None:
        return Result("service.running", "service", "fail", f"ECS service {inv.names.ecs_service} not found",
                      "create the service")
    desired = inv.params.service.desired_count
    stuck = [e["message"] for e in svc.get("events", [])[:3] if "unable to place" in e.get("message", "")]
    if svc["runningCount"] < desired or svc["desiredCount"] != desired:
        detail = f"running {svc['runningCount']}/{svc['desiredCount']} (params {desired})"
        if stuck:
            detail += f"; ECS says: {stuck[0]}"
        return Result("service.running", "service", "fail", detail,
                      "desired count must not exceed instances with the host port free; redeploy")
    return Result("service.running", "service", "pass", f"running {svc['runningCount']}/{desired}")


@check
def end_to_end(inv: Inventory) -> list[Result]:
    out = []
    probe = inv.probes.get("test_invoke")
    if probe is None:
        out.append(Result("endpoint.test_invoke", "endpoint", "skip", "no API method to invoke yet"))
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
        ok = request.get("status") is not None and request["status"] < 500 and request["status"] != 403
        out.append(Result("endpoint.custom_domain", "endpoint", "pass" if ok else "fail",
                          f"GET {request['url']} -> {request.get('status') or request.get('error')} in "
                          f"{request.get('ms')} ms",
                          "" if ok else "403: mapping missing or wrong; 5xx: follow the failing hop above"))
    return out


def run_checks(inv: Inventory) -> list[Result]:
    return [result for fn in CHECKS for result in fn(inv)]


def table(results: list[Result]) -> pd.DataFrame:
    return pd.DataFrame([r.__dict__ for r in results], columns=["id", "hop", "status", "detail", "remedy"])


def first_broken_hop(results: list[Result]) -> str | None:
    failed = {r.hop for r in results if r.status == "fail"}
    return next((hop for hop in HOPS if hop in failed), None)


def verdict(results: list[Result]) -> str:
    failed = [r for r in results if r.status == "fail"]
    if not failed:
        skipped = sum(r.status == "skip" for r in results)
        return f"VERIFIED: all {len(results) - skipped} checks pass ({skipped} skipped, reasons in the table)"
    hop = first_broken_hop(results)
    first = next(r for r in failed if r.hop == hop)
    return f"BROKEN at hop '{hop}': {first.detail}. Remedy: {first.remedy}"


def save(results: list[Result]) -> str:
    """Hand the results to the runner (run.json checks) and return the verdict line."""
    from .context import record

    record("checks", [r.__dict__ for r in results])
    return verdict(results)
