"""The minimal reference: one process, plain boto3, the fewest calls that build AND verify the runbook's chain.

The runbook's default path (params/local.yaml): REST API {proxy+} ANY HTTP_PROXY -> V1 VPC link -> internal NLB in
its own security group (PrivateLink traffic not judged by its inbound rules) -> TCP target group on the fixed host
port -> ECS service (bridge mode, fixed hostPort, the execution role for secrets), the instances admitting the host
port from the NLB's group only, the deployment (integration fingerprint), the stage (vpcLinkId stage variable) and
the base path mapping. Same names, tags and settings as the runbook (lib/names.py), so `runbook verify` passes on
what this script built and `runbook apply` then changes nothing (tests/test_benchmarks.py checks both).

It is what the runbook is measured against (benchmarks/run.py); it is not an alternative to the runbook: no plan,
no idempotency, no guards, no audit record. Every independent write overlaps a wait: all that does not need an
active NLB (its group, listener, target group, task definition, rule, service, REST API, resource, method,
integration) is made before waiting for it; the VPC link right when the NLB is active (AWS builds a V1 link only
on an active NLB); the deployment (stage) and the mapping while the link is PENDING (the integration reads the
link id from a stage variable). Waits poll every POLL_SECONDS, as the runbook's (lib/aws/waits.py).

Its verification reads, one after another, every resource the runbook's checks read (lib/checks/inventory.py):
VERIFY_READS lists them.

    python benchmarks/reference.py params/local.yaml            # build + verify; prints a JSON summary
    python benchmarks/reference.py params/local.yaml --verify-only

AWS is reached through boto3's standard configuration (AWS_ENDPOINT_URL for the sandbox).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import Counter

_T0 = time.monotonic()  # before the imports: the reference pays its start-up like the runbook does

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

from vpclink_runbooks.names import Names  # noqa: E402 - the same names and tags; no AWS behaviour
from vpclink_runbooks.params import load_params  # noqa: E402 - the same YAML with the same defaults

POLL_SECONDS = 1  # lib/aws/waits.py's (tests/test_benchmarks.py keeps them equal)
RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 10})
READ_ONLY_PREFIXES = ("Describe", "Get", "List", "Test", "Lookup")
# What verify() reads, in order: the runbook's inventory reads the same (the account guard and world first).
VERIFY_READS = [
    "sts.GetCallerIdentity", "ec2.DescribeVpcs", "ec2.DescribeSubnets", "ec2.DescribeRouteTables",
    "ecs.ListContainerInstances", "ecs.DescribeContainerInstances", "ec2.DescribeInstances",
    "elbv2.DescribeLoadBalancers", "apigateway.GetVpcLinks", "apigateway.GetRestApis", "apigateway.GetDomainName",
    "apigateway.GetBasePathMappings", "apigateway.GetStage", "apigateway.GetDeployment", "apigateway.GetResources",
    "apigateway.GetIntegration", "elbv2.DescribeTags", "elbv2.DescribeLoadBalancerAttributes",
    "elbv2.DescribeListeners", "elbv2.DescribeTargetGroups", "ec2.DescribeSecurityGroupRules",
    "elbv2.DescribeTargetHealth", "ecs.DescribeServices", "ecs.DescribeTaskDefinition", "ecs.ListTasks",
    "ecs.DescribeTasks", "ecs.ListTasks", "ec2.DescribeSecurityGroupRules", "ec2.DescribeSecurityGroups",
    "apigateway.TestInvokeMethod"]


class Counted:
    """Counts every API call made through one session: by operation, the mutating ones, the waits' polls."""

    def __init__(self, session: boto3.Session):
        self.calls: Counter[str] = Counter()
        self.polls = 0
        self.waiting = False
        session.events.register("after-call", self._count)

    def _count(self, model, **_) -> None:
        self.calls[f"{model.service_model.service_name}.{model.name}"] += 1
        self.polls += self.waiting

    def summary(self) -> dict:
        mutating = sum(v for k, v in self.calls.items() if not k.split(".", 1)[1].startswith(READ_ONLY_PREFIXES)
                       and not k.endswith("GetCallerIdentity"))
        total = sum(self.calls.values())
        return {"calls": total, "mutating": mutating, "reads": total - mutating - self.polls, "polls": self.polls,
                "by_operation": dict(self.calls)}


class Aws:
    """The clients of one counted session."""

    def __init__(self, session: boto3.Session, counted: Counted):
        self.counted = counted
        for name in ("ec2", "elbv2", "ecs", "apigateway", "sts"):
            setattr(self, name, session.client(name, config=RETRY_CONFIG))

    def wait(self, what: str, fetch, done, failed=lambda _: False, timeout: float = 900):
        """Poll `fetch()` every POLL_SECONDS until `done(value)` (first poll at once, as botocore's waiters)."""
        deadline = time.monotonic() + timeout
        self.counted.waiting = True
        try:
            while True:
                value = fetch()
                if done(value):
                    return value
                if failed(value) or time.monotonic() > deadline:
                    raise RuntimeError(f"waiting for {what} failed: {value}")
                time.sleep(POLL_SECONDS)
        finally:
            self.counted.waiting = False


def _supported(p) -> None:
    if (p.vpc_link.version != 1 or p.nlb.type != "network" or not p.fixed_host_port or p.service.extra_ports
            or not p.nlb.security_group or p.service.launch_type != "EC2"):
        raise SystemExit("the reference builds the runbook's default path only: a V1 link to an NLB with its own "
                         "security group, bridge mode on EC2 with one fixed host port")


def _where(aws: Aws, p) -> tuple[list[str], list[str]]:
    """The NLB's subnets (one per AZ with a running cluster instance) and the instances' group for the rule."""
    arns = aws.ecs.list_container_instances(cluster=p.cluster)["containerInstanceArns"]
    ids = [c["ec2InstanceId"] for c in
           aws.ecs.describe_container_instances(cluster=p.cluster, containerInstances=arns)["containerInstances"]]
    instances = [i for r in aws.ec2.describe_instances(InstanceIds=ids)["Reservations"] for i in r["Instances"]
                 if i["State"]["Name"] == "running"]
    by_az: dict[str, str] = {}
    for inst in sorted(instances, key=lambda i: (i["Placement"]["AvailabilityZone"], i["SubnetId"])):
        by_az.setdefault(inst["Placement"]["AvailabilityZone"], inst["SubnetId"])
    shared = sorted(set.intersection(*[{g["GroupId"] for g in i["SecurityGroups"]} for i in instances]))
    groups = shared[:1] or sorted({i["SecurityGroups"][0]["GroupId"] for i in instances})
    return sorted(p.nlb.subnets or by_az.values()), groups


def _load_balancer(aws: Aws, p, n: Names, subnets: list[str]) -> tuple[dict, dict]:
    """The NLB's group, the NLB in it (PrivateLink traffic not judged by its rules), cross-zone, group, listener."""
    group = aws.ec2.create_security_group(
        GroupName=n.nlb_security_group, VpcId=p.vpc_id,
        Description=f"{n.base}: the internal NLB's own group; the instances admit traffic only from it"[:255],
        TagSpecifications=[{"ResourceType": "security-group",
                            "Tags": [*n.tag_list(), {"Key": "Name", "Value": n.nlb_security_group}]}])["GroupId"]
    lb = aws.elbv2.create_load_balancer(Name=n.nlb, Subnets=subnets, Scheme="internal", Type="network",
                                        IpAddressType="ipv4", Tags=n.tag_list(),
                                        SecurityGroups=[group])["LoadBalancers"][0]
    # CreateLoadBalancer has no such parameter: a V1 link's PrivateLink traffic is admitted only once this is off
    aws.elbv2.set_security_groups(LoadBalancerArn=lb["LoadBalancerArn"], SecurityGroups=[group],
                                  EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic="off")
    aws.elbv2.modify_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"], Attributes=[
        {"Key": "load_balancing.cross_zone.enabled", "Value": "true"}])
    s = p.service
    health = ({"HealthCheckProtocol": "HTTP", "HealthCheckPath": s.health_check_path,
               "Matcher": {"HttpCode": "200-399"}} if s.health_check_path else {"HealthCheckProtocol": "TCP"})
    tg = aws.elbv2.create_target_group(Name=n.target_group(s.host_port), Protocol="TCP", Port=s.host_port,
                                       VpcId=p.vpc_id, TargetType="instance", HealthCheckPort="traffic-port",
                                       Tags=n.tag_list(), **health)["TargetGroups"][0]
    aws.elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="TCP", Port=p.listener_port,
                              DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
                              Tags=n.tag_list())
    return dict(lb, SecurityGroups=[group]), tg


def _service(aws: Aws, p, n: Names, tg: dict, nlb_group: str, instance_groups: list[str]) -> None:
    """Task definition, the host-port rule from the NLB's group, the service."""
    s = p.service
    container = {
        "name": n.container, "image": s.image, "cpu": s.cpu, "memory": s.memory, "essential": True,
        "portMappings": [{"containerPort": s.container_port, "hostPort": s.host_port, "protocol": "tcp"}],
        "environment": [{"name": k, "value": v} for k, v in sorted(s.environment.items())],
        "secrets": [{"name": k, "valueFrom": v} for k, v in sorted(s.secrets.items())],
    }
    # as lib/aws/task_needs.py: on EC2 the execution role resolves secrets (the instance role pulls the image)
    role = s.execution_role if s.execution_role.startswith("arn:") else \
        f"arn:aws:iam::{p.account_id}:role/{s.execution_role}"
    task_definition = aws.ecs.register_task_definition(
        family=n.task_family, networkMode="bridge", requiresCompatibilities=["EC2"], containerDefinitions=[container],
        tags=n.tag_list("key", "value"), **({"executionRoleArn": role} if s.secrets else {})
    )["taskDefinition"]["taskDefinitionArn"]
    for group_id in instance_groups:
        aws.ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": s.host_port, "ToPort": s.host_port, "UserIdGroupPairs": [
                {"GroupId": nlb_group, "Description": n.rule_description(s.host_port, "NLB security group")}]}],
            TagSpecifications=[{"ResourceType": "security-group-rule", "Tags": n.tag_list()}])
    aws.ecs.create_service(
        cluster=p.cluster, serviceName=n.ecs_service, taskDefinition=task_definition, desiredCount=s.desired_count,
        launchType="EC2", loadBalancers=[{"targetGroupArn": tg["TargetGroupArn"], "containerName": n.container,
                                          "containerPort": s.container_port}],
        placementConstraints=[{"type": "distinctInstance"}],
        placementStrategy=[{"type": "spread", "field": "attribute:ecs.availability-zone"}],
        deploymentConfiguration={"maximumPercent": p.maximum_percent,
                                 "minimumHealthyPercent": p.minimum_healthy_percent},
        healthCheckGracePeriodSeconds=30, tags=n.tag_list("key", "value"), propagateTags="SERVICE",
        enableECSManagedTags=True)


def _api(aws: Aws, p, n: Names, lb: dict) -> tuple[str, str]:
    """REST API, /{proxy+}, ANY, the HTTP_PROXY integration over the link named by the stage variable."""
    gw = aws.apigateway
    api = gw.create_rest_api(name=n.rest_api, endpointConfiguration={"types": ["REGIONAL"]}, tags=n.tags,
                             description=f"{n.base} via VPC link to {n.nlb}")
    root = api.get("rootResourceId") or gw.get_resources(restApiId=api["id"])["items"][0]["id"]
    proxy = gw.create_resource(restApiId=api["id"], parentId=root, pathPart="{proxy+}")
    gw.put_method(restApiId=api["id"], resourceId=proxy["id"], httpMethod="ANY", authorizationType="NONE",
                  requestParameters={"method.request.path.proxy": True})
    integration = {"type": "HTTP_PROXY", "httpMethod": "ANY",
                   "uri": f"http://{lb['DNSName']}:{p.listener_port}/{{proxy}}", "connectionType": "VPC_LINK",
                   "connectionId": "${stageVariables.vpcLinkId}",
                   "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy"}}
    gw.put_integration(restApiId=api["id"], resourceId=proxy["id"], httpMethod="ANY", type="HTTP_PROXY",
                       integrationHttpMethod="ANY", uri=integration["uri"], connectionType="VPC_LINK",
                       connectionId=integration["connectionId"], requestParameters=integration["requestParameters"],
                       timeoutInMillis=29000)
    # the deployment description carries the integration's fingerprint, as the runbook's does (lib/steps/api.py),
    # so that `runbook verify` can tell the stage serves this integration
    blob = json.dumps(integration, sort_keys=True)
    return api["id"], "vpclink-runbooks integration " + hashlib.sha256(blob.encode()).hexdigest()[:16]


def build(aws: Aws, p) -> dict:
    n = Names(p)
    subnets, instance_groups = _where(aws, p)
    lb, tg = _load_balancer(aws, p, n, subnets)
    _service(aws, p, n, tg, lb["SecurityGroups"][0], instance_groups)
    api_id, fingerprint = _api(aws, p, n, lb)
    # The critical path: NLB active -> VPC link AVAILABLE; the stage and mapping while the link is PENDING.
    aws.wait("NLB active", lambda: aws.elbv2.describe_load_balancers(LoadBalancerArns=[lb["LoadBalancerArn"]]),
             lambda v: v["LoadBalancers"][0]["State"]["Code"] == "active",
             lambda v: v["LoadBalancers"][0]["State"]["Code"] == "failed")
    link = aws.apigateway.create_vpc_link(name=n.vpc_link, targetArns=[lb["LoadBalancerArn"]], tags=n.tags,
                                          description=f"{n.base}: API Gateway -> {n.nlb}")
    aws.apigateway.create_deployment(restApiId=api_id, stageName=p.api.stage, variables={"vpcLinkId": link["id"]},
                                     description=fingerprint)
    aws.apigateway.create_base_path_mapping(domainName=p.api.domain_name, basePath=p.api.base_path,
                                            restApiId=api_id, stage=p.api.stage)
    aws.wait("VPC link AVAILABLE", lambda: aws.apigateway.get_vpc_link(vpcLinkId=link["id"]),
             lambda v: v["status"] == "AVAILABLE", lambda v: v["status"] == "FAILED")
    # Off the API path, beside it all along: the service's tasks running and healthy in the NLB.
    aws.wait("service stable", lambda: aws.ecs.describe_services(cluster=p.cluster, services=[n.ecs_service]),
             lambda v: v["services"][0]["runningCount"] == p.service.desired_count
             and len(v["services"][0]["deployments"]) == 1)
    aws.wait("targets healthy", lambda: aws.elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"]),
             lambda v: sum(t["TargetHealth"]["State"] == "healthy" for t in v["TargetHealthDescriptions"])
             >= p.service.desired_count)
    return {"rest_api": api_id, "vpc_link": link["id"], "load_balancer": lb["LoadBalancerArn"]}


def read_all(aws: Aws, p) -> dict:
    """VERIFY_READS, one after another: the world, the API, the link, the NLB, the targets, the service, the rules."""
    n, ec2, ecs, elbv2, gw = Names(p), aws.ec2, aws.ecs, aws.elbv2, aws.apigateway
    r: dict = {"account": aws.sts.get_caller_identity()["Account"]}
    vpc = [{"Name": "vpc-id", "Values": [p.vpc_id]}]
    r["vpc"] = ec2.describe_vpcs(Filters=vpc)["Vpcs"]
    r["subnets"] = ec2.describe_subnets(Filters=vpc)["Subnets"]
    r["routes"] = ec2.describe_route_tables(Filters=vpc)["RouteTables"]
    arns = ecs.list_container_instances(cluster=p.cluster)["containerInstanceArns"]
    r["container_instances"] = ecs.describe_container_instances(cluster=p.cluster,
                                                                containerInstances=arns)["containerInstances"]
    r["instances"] = [i for res in ec2.describe_instances(InstanceIds=[c["ec2InstanceId"] for c in
                      r["container_instances"]])["Reservations"] for i in res["Instances"]]
    lb = r["lb"] = elbv2.describe_load_balancers(Names=[n.nlb])["LoadBalancers"][0]
    r["link"] = next(v for v in gw.get_vpc_links()["items"] if v["name"] == n.vpc_link)
    api = r["api"] = next(a for a in gw.get_rest_apis()["items"] if a["name"] == n.rest_api)
    r["domain"] = gw.get_domain_name(domainName=p.api.domain_name)
    r["mapping"] = next(m for m in gw.get_base_path_mappings(domainName=p.api.domain_name)["items"]
                        if m["basePath"] == p.api.base_path)
    r["stage"] = gw.get_stage(restApiId=api["id"], stageName=p.api.stage)
    r["deployment"] = gw.get_deployment(restApiId=api["id"], deploymentId=r["stage"]["deploymentId"])
    proxy = next(x for x in gw.get_resources(restApiId=api["id"])["items"] if x.get("pathPart") == "{proxy+}")
    r["integration"] = gw.get_integration(restApiId=api["id"], resourceId=proxy["id"], httpMethod="ANY")
    r["attributes"] = elbv2.describe_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]
    r["listeners"] = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    tg = r["tg"] = elbv2.describe_target_groups(Names=[n.target_group(p.service.host_port)])["TargetGroups"][0]
    r["tags"] = elbv2.describe_tags(ResourceArns=[lb["LoadBalancerArn"], tg["TargetGroupArn"]])["TagDescriptions"]
    r["nlb_rules"] = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": lb.get(
        "SecurityGroups") or ["none"]}])["SecurityGroupRules"]
    r["health"] = elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
    r["service"] = ecs.describe_services(cluster=p.cluster, services=[n.ecs_service])["services"][0]
    r["task_definition"] = ecs.describe_task_definition(taskDefinition=r["service"]["taskDefinition"])
    running = ecs.list_tasks(cluster=p.cluster, serviceName=n.ecs_service, desiredStatus="RUNNING")["taskArns"]
    r["tasks"] = ecs.describe_tasks(cluster=p.cluster, tasks=running)["tasks"] if running else []
    r["stopped"] = ecs.list_tasks(cluster=p.cluster, serviceName=n.ecs_service, desiredStatus="STOPPED")["taskArns"]
    groups = sorted({g["GroupId"] for i in r["instances"] for g in i["SecurityGroups"]})
    r["rules"] = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": groups}])[
        "SecurityGroupRules"]
    r["nlb_group"] = ec2.describe_security_groups(Filters=[*vpc, {"Name": "group-name", "Values": [
        n.nlb_security_group]}])["SecurityGroups"]
    r["test_invoke"] = gw.test_invoke_method(restApiId=api["id"], resourceId=proxy["id"], httpMethod="GET",
                                             pathWithQueryString="/", stageVariables=r["stage"].get("variables", {}))
    return r


def verify(aws: Aws, p) -> dict:
    """Reads everything (read_all), then judges each hop of the chain: domain -> stage -> link -> NLB -> targets."""
    r, n = read_all(aws, p), Names(p)
    nlb_group = [g["GroupId"] for g in r["nlb_group"]]
    healthy = [t for t in r["health"] if t["TargetHealth"]["State"] == "healthy"]
    count = p.service.desired_count
    checks = {
        "account": r["account"] == p.account_id,
        "mapping": r["mapping"]["restApiId"] == r["api"]["id"] and r["mapping"].get("stage") == p.api.stage,
        "stage": r["stage"].get("variables", {}).get("vpcLinkId") == r["link"]["id"],
        "integration": r["integration"].get("connectionType") == "VPC_LINK"
        and r["deployment"].get("description", "").startswith("vpclink-runbooks integration "),
        "vpc_link": r["link"]["status"] == "AVAILABLE" and r["link"]["targetArns"] == [r["lb"]["LoadBalancerArn"]],
        "nlb": r["lb"]["State"]["Code"] == "active" and r["lb"].get("SecurityGroups") == nlb_group
        and {"Key": "load_balancing.cross_zone.enabled", "Value": "true"} in r["attributes"],
        "listener": [(li["Port"], li["DefaultActions"][0]["TargetGroupArn"]) for li in r["listeners"]]
        == [(p.listener_port, r["tg"]["TargetGroupArn"])],
        "targets": len(healthy) >= count,
        "service": r["service"]["runningCount"] == count and len(r["tasks"]) == count,
        "security_group": any(rule["FromPort"] == p.service.host_port and (rule.get("ReferencedGroupInfo") or {}).get(
            "GroupId") in nlb_group for rule in r["rules"] if not rule["IsEgress"]),
        "tags": all(n.owns(d["Tags"]) for d in r["tags"]),
        "test_invoke": r["test_invoke"].get("status") == 200,
    }
    problems = sorted(k for k, ok in checks.items() if not ok)
    return {"ok": not problems, "problems": problems, "healthy_targets": len(healthy)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("params", help="params YAML (the same file `runbook apply` takes)")
    parser.add_argument("--verify-only", action="store_true", help="only the verification reads")
    args = parser.parse_args(argv)
    p = load_params(args.params)
    _supported(p)
    session = boto3.Session(region_name=p.region)
    aws = Aws(session, Counted(session))
    built = None if args.verify_only else build(aws, p)
    checked = verify(aws, p)
    out = {"seconds": round(time.monotonic() - _T0, 3), "built": built, "verified": checked,
           **aws.counted.summary()}
    print(json.dumps(out))
    return 0 if checked["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
