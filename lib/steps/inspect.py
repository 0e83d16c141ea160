"""Inspect the VPC (read-only): subnets, cluster instances, existing pieces, pre-flight findings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
from botocore.exceptions import ClientError

from vpclink_runbooks.aws import ecs as aws_ecs
from vpclink_runbooks.aws import task_needs
from vpclink_runbooks.aws.parallel import gather
from vpclink_runbooks.context import Context
from vpclink_runbooks.errors import PreflightRefused

# IAM actions this module calls (the operator policy is generated from these declarations).
PERMISSIONS = [
    "sts:GetCallerIdentity", "ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeRouteTables",
    "ec2:DescribeInstances", "ecs:ListContainerInstances", "ecs:DescribeContainerInstances",
    "ecs:ListTasks", "ecs:DescribeTasks", "elasticloadbalancing:DescribeLoadBalancers",
    "apigateway:GET", "ecs:DescribeClusters",
]
VPC_LINK_QUOTA = 20


@dataclass
class World:
    """What exists before (and around) the runbook, fetched once per notebook."""

    vpc: dict
    subnets: list[dict]
    instances: list[dict]  # container instances joined with their EC2 instance
    load_balancers: list[dict] = field(default_factory=list)
    vpc_links: list[dict] = field(default_factory=list)
    rest_apis: list[dict] = field(default_factory=list)
    domain: dict | None = None
    mappings: list[dict] = field(default_factory=list)

    @property
    def instance_azs(self) -> list[str]:
        return sorted({i["az"] for i in self.instances if i["state"] == "running"})

    def subnet(self, subnet_id: str) -> dict | None:
        return next((s for s in self.subnets if s["subnet_id"] == subnet_id), None)


def _private_subnets(aws, vpc_id: str, subnets: list[dict]) -> dict[str, bool]:
    """A subnet is public when its route table (explicit, else the VPC main table) routes to an IGW."""
    tables = aws.ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]
    main = next((t for t in tables if any(a.get("Main") for a in t.get("Associations", []))), None)
    by_subnet = {a["SubnetId"]: t for t in tables for a in t.get("Associations", []) if a.get("SubnetId")}

    def public(table: dict | None) -> bool:
        return any(str(r.get("GatewayId", "")).startswith("igw-") for r in (table or {}).get("Routes", []))

    return {s["SubnetId"]: not public(by_subnet.get(s["SubnetId"], main)) for s in subnets}


def _vpc_and_subnets(ctx: Context) -> tuple[dict, list[dict]]:
    """The VPC (refused when it does not exist) and its subnets, each with whether it is private."""
    aws, p = ctx.aws, ctx.params
    vpcs = aws.ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [p.vpc_id]}])["Vpcs"]
    if not vpcs:
        raise PreflightRefused(f"vpc_id {p.vpc_id} does not exist in {p.region} of account {p.account_id}; "
                               "fix vpc_id (ec2 describe-vpcs lists them)")
    raw_subnets = [s for page in aws.ec2.get_paginator("describe_subnets").paginate(
        Filters=[{"Name": "vpc-id", "Values": [p.vpc_id]}]) for s in page["Subnets"]]
    private = _private_subnets(aws, p.vpc_id, raw_subnets)
    return vpcs[0], sorted(({"subnet_id": s["SubnetId"], "az": s["AvailabilityZone"], "cidr": s["CidrBlock"],
                             "private": private[s["SubnetId"]],
                             "name": next((t["Value"] for t in s.get("Tags", []) if t["Key"] == "Name"), "")}
                            for s in raw_subnets), key=lambda s: (s["az"], s["subnet_id"]))


def _cluster_instances(ctx: Context) -> list[dict]:
    p = ctx.params
    try:
        return aws_ecs.container_instances(ctx.aws, p.cluster)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ClusterNotFoundException":
            raise
        raise PreflightRefused(f"cluster {p.cluster} does not exist in {p.region}; fix cluster") from None


def _domain(aws, domain_name: str) -> tuple[dict | None, list[dict]]:
    """The custom domain and its base path mappings; (None, []) when there is no such domain."""
    domain = None
    try:
        domain = aws.apigateway.get_domain_name(domainName=domain_name)
        return domain, [m for page in aws.apigateway.get_paginator("get_base_path_mappings").paginate(
            domainName=domain_name) for m in page.get("items", [])]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NotFoundException":
            raise
        return domain, []


def discover(ctx: Context) -> World:
    """The world around the runbook. Reads that need no other's answer go out side by side (aws.parallel); if
    any fails, the first in this order is raised (the VPC's, then the cluster's refusal), as when read in turn."""
    aws, p = ctx.aws, ctx.params
    (vpc, subnets), instances, held, lbs, links, apis, (domain, mappings) = gather(
        lambda: _vpc_and_subnets(ctx), lambda: _cluster_instances(ctx),
        lambda: aws_ecs.service_ports(aws, p.cluster, ctx.names.ecs_service),
        lambda: [lb for page in aws.elbv2.get_paginator("describe_load_balancers").paginate()
                 for lb in page["LoadBalancers"] if lb.get("VpcId") == p.vpc_id],
        lambda: [v for page in aws.apigateway.get_paginator("get_vpc_links").paginate() for v in page["items"]],
        lambda: [a for page in aws.apigateway.get_paginator("get_rest_apis").paginate() for a in page["items"]],
        lambda: _domain(aws, p.api.domain_name))
    for inst in instances:
        inst["our_ports"] = sorted(held.get(inst["container_instance_arn"], set()))
    return World(vpc=vpc, subnets=subnets, instances=instances, load_balancers=lbs, vpc_links=links, rest_apis=apis,
                 domain=domain, mappings=mappings)


# ---- tables for the notebook -------------------------------------------------------------------

def subnets_table(world: World) -> pd.DataFrame:
    counts = {}
    for inst in world.instances:
        counts[inst["subnet_id"]] = counts.get(inst["subnet_id"], 0) + 1
    return pd.DataFrame([{**s, "cluster instances": counts.get(s["subnet_id"], 0)} for s in world.subnets],
                        columns=["subnet_id", "name", "az", "cidr", "private", "cluster instances"])


def instances_table(ctx: Context, world: World) -> pd.DataFrame:
    wanted = _wanted_ports(ctx)
    rows = []
    for inst in world.instances:
        blocked = sorted(set(wanted) & (set(inst["used_ports"]) - set(inst["our_ports"])))
        rows.append({"instance_id": inst["instance_id"], "az": inst["az"], "private_ip": inst["private_ip"],
                     "state": inst["state"], "ecs status": inst["status"],
                     "security_groups": ", ".join(inst["security_groups"]),
                     "ports in use": ", ".join(map(str, inst["used_ports"])),
                     "host ports free": "yes" if not blocked else f"no: {', '.join(map(str, blocked))} taken"})
    return pd.DataFrame(rows, columns=["instance_id", "az", "private_ip", "state", "ecs status",
                                       "security_groups", "ports in use", "host ports free"])


def existing_table(ctx: Context, world: World) -> pd.DataFrame:
    owned = ctx.names
    rows = []
    for lb in world.load_balancers:
        rows.append({"kind": "load balancer", "name": lb["LoadBalancerName"], "id": lb["LoadBalancerArn"],
                     "detail": f"{lb['Type']} {lb['Scheme']} {lb['State']['Code']}",
                     "ours": lb["LoadBalancerName"] == owned.nlb})
    for link in world.vpc_links:
        rows.append({"kind": "VPC link", "name": link["name"], "id": link["id"],
                     "detail": link.get("status", ""), "ours": owned.owns(link.get("tags"))})
    for api in world.rest_apis:
        rows.append({"kind": "REST API", "name": api["name"], "id": api["id"], "detail": "",
                     "ours": owned.owns(api.get("tags"))})
    if world.domain:
        rows.append({"kind": "custom domain", "name": world.domain["domainName"],
                     "id": world.domain.get("regionalDomainName", ""),
                     "detail": ",".join(world.domain.get("endpointConfiguration", {}).get("types", [])),
                     "ours": False})
    for m in world.mappings:
        rows.append({"kind": "base path mapping", "name": f"/{m['basePath']}", "id": m["restApiId"],
                     "detail": f"stage {m.get('stage')}", "ours": m["basePath"] == ctx.params.api.base_path})
    return pd.DataFrame(rows, columns=["kind", "name", "id", "detail", "ours"])


# ---- pre-flight ------------------------------------------------------------------------------------

def _wanted_ports(ctx: Context) -> list[int]:
    """The fixed host ports every instance must have free (none for dynamic host ports or awsvpc)."""
    s = ctx.params.service
    if not ctx.params.fixed_host_port:
        return []
    return [s.host_port] + [e.host_port for e in s.extra_ports]


def placeable_instances(ctx: Context, world: World) -> list[dict]:
    """Running, ACTIVE instances where every fixed host port is free (or held by our own tasks)."""
    wanted = set(_wanted_ports(ctx))
    return [i for i in world.instances
            if i["state"] == "running" and i["status"] == "ACTIVE"
            and not wanted & (set(i["used_ports"]) - set(i["our_ports"]))]


def rollout_problem(desired: int, capacity: int, minimum_percent: int, maximum_percent: int) -> str | None:
    """Why a fixed-port deployment cannot roll, or None.

    ECS keeps at least ceil(desired*min/100) tasks running and at most floor(desired*max/100) tasks in
    total. With a fixed host port each instance holds one task, so a new task needs either an old task
    stopped first (min < 100%) or a spare instance plus room above desired (max > 100%).
    """
    keep_running = math.ceil(desired * minimum_percent / 100)
    total_allowed = math.floor(desired * maximum_percent / 100)
    can_stop_first = keep_running < desired
    can_start_extra = total_allowed > desired and capacity > desired
    if can_stop_first or can_start_extra:
        return None
    return (f"with desired_count {desired}, minimumHealthyPercent {minimum_percent} keeps all {keep_running} "
            f"tasks running and maximumPercent {maximum_percent} allows {total_allowed} in total on "
            f"{capacity} instance(s) with the host port free: a new task can never get the fixed port, so "
            "every deployment stalls. Lower service.deployment.minimum_healthy_percent (e.g. "
            f"{math.floor(100 * (desired - 1) / desired)}) or add an instance and raise maximum_percent")


def preflight(ctx: Context, world: World) -> pd.DataFrame:
    """What would stop or spoil an apply here, worst first within each topic; "ready" when nothing does."""
    p = ctx.params
    findings: list[dict] = []

    def add(severity: str, finding: str, detail: str, fix: str) -> None:
        findings.append({"severity": severity, "finding": finding, "detail": detail, "fix": fix})

    running = [i for i in world.instances if i["state"] == "running" and i["status"] == "ACTIVE"]
    _instance_findings(ctx, running, add)
    capacity = len(placeable_instances(ctx, world))
    _capacity_findings(ctx, world, running, capacity, add)
    _subnet_findings(ctx, world, add)
    _api_findings(ctx, world, add)
    _name_findings(ctx, world, add)
    _task_findings(ctx, add)
    if not findings:
        add("info", "ready", f"{capacity} instance(s) in {', '.join(world.instance_azs)} can take the fixed host "
            f"port {p.service.host_port}" if p.fixed_host_port else
            f"{len(running)} instance(s) in {', '.join(world.instance_azs)}; {_path_name(p)} has no fixed host port",
            "none")
    return pd.DataFrame(findings, columns=["severity", "finding", "detail", "fix"])


def _instance_findings(ctx: Context, running: list[dict], add) -> None:
    """The cluster's running instances: any at all, their host ports, their security groups."""
    p = ctx.params
    if not running:
        add("error", "no cluster instances", f"cluster {p.cluster} has no running ACTIVE container instances",
            "register EC2 container instances in the cluster first")
    for inst in running:
        taken = sorted(set(_wanted_ports(ctx)) & (set(inst["used_ports"]) - set(inst["our_ports"])))
        if taken:
            add("warning", "host port already used",
                f"{inst['instance_id']} ({inst['az']}) already uses port(s) {taken}; no task of ours fits there",
                "choose a free service.host_port or move the other task")
    bare = [i["instance_id"] for i in running if not i["security_groups"]]
    if bare:
        add("error", "instance without security group", f"{bare} have no security group",
            "attach a security group to every container instance")


def _capacity_findings(ctx: Context, world: World, running: list[dict], capacity: int, add) -> None:
    """Availability zones, and whether desired_count fits and can roll with a fixed host port."""
    p = ctx.params
    if running and len(world.instance_azs) < 2:
        add("warning" if p.nlb.type == "network" else "error", "instances in one AZ",
            f"all cluster instances are in {world.instance_azs}",
            "run instances in at least two AZs for availability" if p.nlb.type == "network" else
            "an ALB needs subnets in at least two AZs: set load_balancer.subnets to subnets of two AZs")
    desired = p.service.desired_count
    if not p.fixed_host_port:
        pass  # no fixed host port: tasks do not compete for a port, so instances do not cap desired_count
    elif desired > capacity:
        add("error", "desired count larger than instances",
            f"desired_count {desired} but only {capacity} instance(s) can take host port {p.service.host_port}; "
            f"a fixed host port allows one task per instance, so {desired - capacity} task(s) would never start",
            f"set service.desired_count to at most {capacity} or add instances")
    else:
        problem = rollout_problem(desired, capacity, p.minimum_healthy_percent, p.maximum_percent)
        if problem:
            add("error", "deployment cannot roll with a fixed port", problem,
                "change service.deployment as described")


def _subnet_findings(ctx: Context, world: World, add) -> None:
    """The load balancer's subnets (when params name them): in the VPC, and covering the instances' AZs."""
    p = ctx.params
    if p.nlb.subnets:
        for subnet_id in p.nlb.subnets:
            subnet = world.subnet(subnet_id)
            if subnet is None:
                add("error", "subnet outside the VPC", f"nlb.subnets has {subnet_id}, not a subnet of {p.vpc_id}",
                    "list subnets of the VPC (see the subnets table)")
        chosen = {world.subnet(s)["az"] for s in p.nlb.subnets if world.subnet(s)}
        for az in sorted(set(world.instance_azs) - chosen):
            add("warning", "instances in an AZ the NLB does not serve",
                f"nlb.subnets covers {sorted(chosen)}; instances in {az} would be unused targets",
                f"add a subnet of {az} to nlb.subnets")


def _api_findings(ctx: Context, world: World, add) -> None:
    """The custom domain: present, REGIONAL, and its base path free or already ours."""
    p, names = ctx.params, ctx.names
    if world.domain is None:
        add("error", "custom domain missing", f"{p.api.domain_name} is not an API Gateway custom domain in {p.region}",
            "create the custom domain (with its ACM certificate) first, or fix api.domain_name")
    else:
        types = world.domain.get("endpointConfiguration", {}).get("types", [])
        if "REGIONAL" not in types:
            add("warning", "custom domain is not REGIONAL", f"{p.api.domain_name} is {types}",
                "a regional REST API maps best to a REGIONAL custom domain")
        ours = {a["id"] for a in world.rest_apis if names.owns(a.get("tags"))}
        for m in world.mappings:
            if m["basePath"] == p.api.base_path and m["restApiId"] not in ours:
                add("error", "base path already taken",
                    f"{p.api.domain_name}/{p.api.base_path} already maps to API {m['restApiId']} "
                    f"stage {m.get('stage')}",
                    "choose another api.base_path; the runbook never takes over another API's mapping")


def _name_findings(ctx: Context, world: World, add) -> None:
    """Room for a new VPC link, and the load balancer's name not held by a load balancer that is not internal."""
    names = ctx.names
    existing_link = any(names.owns(v.get("tags")) for v in world.vpc_links)
    if not existing_link and len(world.vpc_links) >= VPC_LINK_QUOTA:
        add("error", "VPC link quota reached", f"{len(world.vpc_links)} VPC links exist (quota {VPC_LINK_QUOTA})",
            "share an existing NLB/link or request a quota increase")
    other_lbs = [lb for lb in world.load_balancers if lb["LoadBalancerName"] == names.nlb and
                 lb["Scheme"] != "internal"]
    if other_lbs:
        add("error", "load balancer name taken", f"{names.nlb} exists and is not internal",
            "rename the environment or remove that load balancer")


def _task_findings(ctx: Context, add) -> None:
    """What the tasks need at start (secrets, execution role, image), read as metadata: a missing one would only
    show minutes after apply as a service that keeps stopping tasks."""
    for need in task_needs.missing(ctx.aws, ctx.params):
        add("error", f"task cannot start: {need.field}", need.detail, need.fix)


def require_clear(ctx: Context, findings: pd.DataFrame) -> str:
    """Refuse (nothing changed) when pre-flight found errors; otherwise say the plan may proceed."""
    errors = findings[findings["severity"] == "error"]
    if len(errors):
        lines = "; ".join(f"{r.finding}: {r.detail} (fix: {r.fix})" for r in errors.itertuples())
        raise PreflightRefused(f"pre-flight refused ({len(errors)} error(s)), nothing was changed: {lines}")
    return f"pre-flight clear: {len(findings)} finding(s), none blocking"


def world_summary(world: World) -> pd.DataFrame:
    vpc = world.vpc
    rows = {
        "VPC": f"{vpc['VpcId']} {vpc.get('CidrBlock', '')}",
        "subnets": f"{len(world.subnets)} ({sum(s['private'] for s in world.subnets)} private)",
        "cluster instances": f"{len(world.instances)} in {', '.join(world.instance_azs) or 'no AZ'}",
        "load balancers in VPC": len(world.load_balancers),
        "VPC links": len(world.vpc_links),
        "REST APIs": len(world.rest_apis),
        "custom domain": world.domain["domainName"] if world.domain else "not found",
        "base path mappings": ", ".join("/" + m["basePath"] for m in world.mappings) or "none",
    }
    return pd.DataFrame({"": list(rows), "found": [str(v) for v in rows.values()]})


# ---- which path to take ----------------------------------------------------------------------------

PATHS = {
    "v1-nlb-fixed": "V1 link + NLB + bridge, fixed host port",
    "v2-alb-dynamic": "V2 link + ALB + bridge, dynamic host ports",
    "v2-nlb-awsvpc": "V2 link + NLB + awsvpc (IP targets)",
}
PATH_PARAMS = {
    "v1-nlb-fixed": "vpc_link.version: 1, load_balancer.type: network, service.network_mode: bridge, "
                    "service.host_port: <free port>",
    "v2-alb-dynamic": "vpc_link.version: 2, load_balancer.type: application, service.network_mode: bridge, "
                      "no service.host_port",
    "v2-nlb-awsvpc": "vpc_link.version: 2, load_balancer.type: network, service.network_mode: awsvpc "
                     "(launch_type EC2 or FARGATE), no service.host_port",
}


def _path_name(p) -> str:
    if p.awsvpc:
        return f"V{p.vpc_link.version} link + {p.nlb.type} LB + awsvpc ({p.service.launch_type})"
    if p.dynamic_host_ports:
        return "V2 link + ALB + bridge with dynamic host ports"
    return f"V{p.vpc_link.version} link + NLB + bridge with fixed host port {p.service.host_port}"


def _fargate_capable(ctx: Context) -> bool | None:
    """Does the cluster have the FARGATE capacity provider? None when it cannot be read."""
    try:
        clusters = ctx.aws.ecs.describe_clusters(clusters=[ctx.params.cluster])["clusters"]
    except ClientError as exc:  # a missing cluster is refused elsewhere; anything else (AccessDenied) fails
        if exc.response["Error"]["Code"] != "ClusterNotFoundException":
            raise
        return None
    return bool(clusters) and "FARGATE" in (clusters[0].get("capacityProviders") or [])


def recommend_path(ctx: Context, world: World) -> pd.DataFrame:
    """Score the three paths on what inspect found; the first row is the recommendation, each with its reasons."""
    p = ctx.params
    running = [i for i in world.instances if i["state"] == "running" and i["status"] == "ACTIVE"]
    desired = p.service.desired_count
    fixed = p.service.host_port
    free_fixed = [i for i in running if fixed is None or fixed not in set(i["used_ports"]) - set(i["our_ports"])]
    busy_ports = sorted({port for i in running for port in set(i["used_ports"]) - set(i["our_ports"])
                         if 1024 <= port < 32768})
    fargate = _fargate_capable(ctx)
    score = {key: 0 for key in PATHS}
    reasons: dict[str, list[str]] = {key: [] for key in PATHS}

    def why(key: str, points: int, text: str) -> None:
        score[key] += points
        reasons[key].append(text)

    if fixed is not None and len(free_fixed) < desired:
        why("v1-nlb-fixed", -3, f"only {len(free_fixed)} of {len(running)} instance(s) have host port {fixed} free "
            f"for desired_count {desired}")
    elif fixed is not None:
        why("v1-nlb-fixed", 1, f"{len(free_fixed)} instance(s) have host port {fixed} free for desired_count {desired}")
    if len(running) <= desired:
        why("v1-nlb-fixed", -1, f"{len(running)} instance(s) for {desired} task(s): a fixed port leaves no spare "
            "instance, so deployments must stop a task first")
        why("v2-alb-dynamic", 1, "several tasks per instance: deployments need no spare instance")
        why("v2-nlb-awsvpc", 1, "several tasks per instance (or Fargate): deployments need no spare instance")
    if len(busy_ports) >= 3:
        why("v2-alb-dynamic", 1, f"instances already hold several host ports ({busy_ports[:6]}...): dynamic ports "
            "avoid picking one that is free everywhere")
        why("v2-nlb-awsvpc", 1, f"instances already hold several host ports ({busy_ports[:6]}): awsvpc uses none")
    if fargate:
        why("v2-nlb-awsvpc", 2, "the cluster has the FARGATE capacity provider: no instance to manage")
    elif fargate is False:
        why("v2-nlb-awsvpc", 0, "no FARGATE capacity provider: awsvpc tasks use instance ENIs (mind the ENI limit "
            "per instance, or enable awsvpcTrunking)")
    if p.service.health_check_path:
        why("v2-alb-dynamic", 1, f"HTTP health check {p.service.health_check_path}: an ALB checks and routes HTTP")
    else:
        why("v2-alb-dynamic", -1, "no HTTP health check path: an ALB checks HTTP '/' (set "
            "service.health_check_path)")
    if len(world.instance_azs) < 2:
        why("v2-alb-dynamic", -3, "an ALB needs two AZs; the instances are in one")
    existing = [v for v in world.vpc_links if ctx.names.owns(v.get("tags"))]
    if existing:
        why("v1-nlb-fixed", 1, "this environment already runs on a V1 link: staying avoids a migration")
    why("v1-nlb-fixed", 0, "the default; no V2 link or ALB cost")
    current = next((k for k in PATHS if PATHS[k] == _current_path_label(p)), None)
    # a tie goes to the path the params ask for: moving needs a reason
    order = sorted(PATHS, key=lambda k: (-score[k], k != current, list(PATHS).index(k)))
    rows = [{"path": PATHS[k], "score": score[k], "params": PATH_PARAMS[k],
             "current": k == current, "reasons": "; ".join(reasons[k])} for k in order]
    verdict = _verdict(p, current, order[0], score, rows[0]["reasons"])
    rows[0]["reasons"] = f"{verdict}. {rows[0]['reasons']}".rstrip(". ")
    rows[0]["path"] = f"RECOMMENDED: {rows[0]['path']}"
    return pd.DataFrame(rows, columns=["path", "score", "current", "params", "reasons"])


def _verdict(p, current: str | None, best: str, score: dict[str, int], best_reasons: str) -> str:
    """Say whether the recommendation is the params' path, or why another suits the cluster better."""
    if current is None:
        return f"your params ask for {_path_name(p)}, none of the three scored paths; this one scores best"
    if best == current:
        return "this is the path your params ask for"
    return (f"your params ask for {PATHS[current]} (score {score[current]}); this path suits the cluster "
            f"better (score {score[best]}) because: {best_reasons}")


def _current_path_label(p) -> str:
    if p.awsvpc and p.vpc_link.version == 2 and p.nlb.type == "network":
        return PATHS["v2-nlb-awsvpc"]
    if p.dynamic_host_ports:
        return PATHS["v2-alb-dynamic"]
    if p.fixed_host_port and p.vpc_link.version == 1:
        return PATHS["v1-nlb-fixed"]
    return _path_name(p)
