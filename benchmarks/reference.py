"""The minimal reference: one process, plain boto3, the fewest calls that build AND verify the same chain.

REST API {proxy+} ANY HTTP_PROXY -> VPC link -> internal NLB (TCP listener) -> TCP target group on the fixed host
port -> ECS service (bridge mode, fixed hostPort), plus the instance security group rule from the NLB subnets, the
deployment, the stage (vpcLinkId stage variable) and the base path mapping. Same names and tags as the runbook, so
`runbook verify` can judge what this script built (tests/test_benchmarks.py does).

It is what the runbook is measured against (benchmarks/run.py); it is not an alternative to the runbook: no plan,
no idempotency, no guards, no audit record. Independent work is ordered to overlap the waits: everything that does
not need an active NLB is created before waiting for it, and the REST API pieces are created while the VPC link
is still PENDING (the integration reads the link id from a stage variable, so only the deployment needs it).

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

from vpclink_runbooks.params import load_params  # noqa: E402 - only to read the same YAML with the same defaults

POLL_SECONDS = 1  # the same poll interval as the runbook's waits (lib/waits.py)
RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 10})
READ_ONLY_PREFIXES = ("Describe", "Get", "List", "Test", "Lookup")
TAG_KEYS = ("runbook:environment", "runbook:service", "runbook:managed-by")


class Counted:
    """Counts every API call (and the mutating ones) made through one session."""

    def __init__(self, session: boto3.Session):
        self.calls: Counter[str] = Counter()
        session.events.register("after-call", self._count)

    def _count(self, model, **_) -> None:
        self.calls[f"{model.service_model.service_name}.{model.name}"] += 1

    def summary(self) -> dict:
        mutating = {k: v for k, v in self.calls.items()
                    if not k.split(".", 1)[1].startswith(READ_ONLY_PREFIXES) and not k.endswith("GetCallerIdentity")}
        return {"calls": sum(self.calls.values()), "mutating": sum(mutating.values()), "by_operation": dict(self.calls)}


def poll(what: str, fetch, done, failed=lambda _: False, timeout: float = 900):
    """Poll `fetch()` every POLL_SECONDS until `done(value)`; the VPC link has no boto3 waiter."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if failed(value) or time.monotonic() > deadline:
            raise RuntimeError(f"waiting for {what} failed: {value}")
        time.sleep(POLL_SECONDS)


def build(session: boto3.Session, p) -> dict:
    ec2, elbv2, ecs, gw = (session.client(n, config=RETRY_CONFIG) for n in ("ec2", "elbv2", "ecs", "apigateway"))
    base = f"{p.environment}-{p.service.name}"
    tags = dict(zip(TAG_KEYS, (p.environment, p.service.name, "vpclink-runbooks"), strict=True))
    tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
    s = p.service

    # Where the cluster runs: container instances -> EC2 instances (subnet, AZ, security groups).
    arns = ecs.list_container_instances(cluster=p.cluster)["containerInstanceArns"]
    ids = [c["ec2InstanceId"] for c in
           ecs.describe_container_instances(cluster=p.cluster, containerInstances=arns)["containerInstances"]]
    instances = [i for r in ec2.describe_instances(InstanceIds=ids)["Reservations"] for i in r["Instances"]
                 if i["State"]["Name"] == "running"]
    by_az: dict[str, str] = {}
    for inst in sorted(instances, key=lambda i: (i["Placement"]["AvailabilityZone"], i["SubnetId"])):
        by_az.setdefault(inst["Placement"]["AvailabilityZone"], inst["SubnetId"])
    subnets = sorted(p.nlb.subnets or by_az.values())
    cidrs = sorted(sn["CidrBlock"] for sn in ec2.describe_subnets(SubnetIds=subnets)["Subnets"])
    group_sets = [{g["GroupId"] for g in i["SecurityGroups"]} for i in instances]
    shared = sorted(set.intersection(*group_sets))
    groups = shared[:1] or sorted({i["SecurityGroups"][0]["GroupId"] for i in instances})

    # Everything that does not need an active NLB, before waiting for it.
    lb = elbv2.create_load_balancer(Name=f"{base}-nlb", Subnets=subnets, Scheme="internal", Type="network",
                                    IpAddressType="ipv4", Tags=tag_list)["LoadBalancers"][0]
    elbv2.modify_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"], Attributes=[
        {"Key": "load_balancing.cross_zone.enabled", "Value": "true"}])
    health = ({"HealthCheckProtocol": "HTTP", "HealthCheckPath": s.health_check_path,
               "Matcher": {"HttpCode": "200-399"}} if s.health_check_path else {"HealthCheckProtocol": "TCP"})
    tg = elbv2.create_target_group(Name=f"{base}-{s.host_port}", Protocol="TCP", Port=s.host_port, VpcId=p.vpc_id,
                                   TargetType="instance", HealthCheckPort="traffic-port", Tags=tag_list,
                                   **health)["TargetGroups"][0]
    elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="TCP", Port=p.listener_port,
                          DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}], Tags=tag_list)
    container = {
        "name": s.name, "image": s.image, "cpu": s.cpu, "memory": s.memory, "essential": True,
        "portMappings": [{"containerPort": s.container_port, "hostPort": s.host_port, "protocol": "tcp"}],
        "environment": [{"name": k, "value": v} for k, v in sorted(s.environment.items())],
        "secrets": [{"name": k, "valueFrom": v} for k, v in sorted(s.secrets.items())],
    }
    role = {"executionRoleArn": f"arn:aws:iam::{p.account_id}:role/ecsTaskExecutionRole"} if s.secrets else {}
    task_definition = ecs.register_task_definition(
        family=base, networkMode="bridge", requiresCompatibilities=["EC2"], containerDefinitions=[container],
        tags=[{"key": k, "value": v} for k, v in tags.items()], **role)["taskDefinition"]["taskDefinitionArn"]
    for group_id in groups:
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[{
            "IpProtocol": "tcp", "FromPort": s.host_port, "ToPort": s.host_port,
            "IpRanges": [{"CidrIp": c, "Description": f"vpclink-runbooks {base} host port {s.host_port} from NLB "
                          "subnet"} for c in cidrs]}],
            TagSpecifications=[{"ResourceType": "security-group-rule", "Tags": tag_list}])
    ecs.create_service(
        cluster=p.cluster, serviceName=s.name, taskDefinition=task_definition, desiredCount=s.desired_count,
        launchType="EC2", loadBalancers=[{"targetGroupArn": tg["TargetGroupArn"], "containerName": s.name,
                                          "containerPort": s.container_port}],
        placementConstraints=[{"type": "distinctInstance"}],
        placementStrategy=[{"type": "spread", "field": "attribute:ecs.availability-zone"}],
        deploymentConfiguration={"maximumPercent": getattr(p, "maximum_percent", s.deployment.maximum_percent),
                                 "minimumHealthyPercent": p.minimum_healthy_percent},
        healthCheckGracePeriodSeconds=30, tags=[{"key": k, "value": v} for k, v in tags.items()],
        propagateTags="SERVICE", enableECSManagedTags=True)

    # The critical path: NLB active -> VPC link AVAILABLE -> deployment.
    elbv2.get_waiter("load_balancer_available").wait(LoadBalancerArns=[lb["LoadBalancerArn"]],
                                                     WaiterConfig={"Delay": POLL_SECONDS, "MaxAttempts": 900})
    link = gw.create_vpc_link(name=f"{base}-link", targetArns=[lb["LoadBalancerArn"]], tags=tags,
                              description=f"{base}: API Gateway -> {base}-nlb")
    api = gw.create_rest_api(name=base, endpointConfiguration={"types": ["REGIONAL"]}, tags=tags,
                             description=f"{base} via VPC link to {base}-nlb")
    root = gw.get_resources(restApiId=api["id"])["items"][0]
    proxy = gw.create_resource(restApiId=api["id"], parentId=root["id"], pathPart="{proxy+}")
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
    poll("VPC link AVAILABLE", lambda: gw.get_vpc_link(vpcLinkId=link["id"]),
         lambda v: v["status"] == "AVAILABLE", lambda v: v["status"] == "FAILED")
    # The deployment description carries the integration's fingerprint, as the runbook's does, so that
    # `runbook verify` can tell the stage serves this integration.
    blob = json.dumps({k: integration.get(k) for k in ("type", "httpMethod", "uri", "connectionType",
                                                         "connectionId", "requestParameters")}, sort_keys=True)
    gw.create_deployment(restApiId=api["id"], stageName=p.api.stage, variables={"vpcLinkId": link["id"]},
                         description="vpclink-runbooks integration " + hashlib.sha256(blob.encode()).hexdigest()[:16])
    gw.create_base_path_mapping(domainName=p.api.domain_name, basePath=p.api.base_path, restApiId=api["id"],
                                stage=p.api.stage)

    # Off the API path, in parallel with it all along: the service's tasks running and healthy in the NLB.
    ecs.get_waiter("services_stable").wait(cluster=p.cluster, services=[s.name],
                                           WaiterConfig={"Delay": POLL_SECONDS, "MaxAttempts": 900})
    elbv2.get_waiter("target_in_service").wait(TargetGroupArn=tg["TargetGroupArn"],
                                               WaiterConfig={"Delay": POLL_SECONDS, "MaxAttempts": 900})
    return {"rest_api": api["id"], "vpc_link": link["id"], "load_balancer": lb["LoadBalancerArn"]}


def verify(session: boto3.Session, p) -> dict:
    """The fewest reads that show the chain is wired end to end: domain -> API stage -> link -> NLB -> targets."""
    gw, elbv2 = (session.client(n, config=RETRY_CONFIG) for n in ("apigateway", "elbv2"))
    mapping = gw.get_base_path_mapping(domainName=p.api.domain_name, basePath=p.api.base_path)
    stage = gw.get_stage(restApiId=mapping["restApiId"], stageName=p.api.stage)
    link = gw.get_vpc_link(vpcLinkId=stage["variables"]["vpcLinkId"])
    lb_arn = link["targetArns"][0]
    listener = elbv2.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"][0]
    tg_arn = listener["DefaultActions"][0]["TargetGroupArn"]
    health = elbv2.describe_target_health(TargetGroupArn=tg_arn)["TargetHealthDescriptions"]
    healthy = [t for t in health if t["TargetHealth"]["State"] == "healthy"]
    problems = []
    if mapping.get("stage") != p.api.stage:
        problems.append(f"mapping serves stage {mapping.get('stage')}")
    if link["status"] != "AVAILABLE":
        problems.append(f"VPC link {link['id']} is {link['status']}")
    if listener["Port"] != p.listener_port:
        problems.append(f"listener on {listener['Port']}")
    if len(healthy) < p.service.desired_count:
        problems.append(f"{len(healthy)}/{p.service.desired_count} targets healthy")
    return {"ok": not problems, "problems": problems, "healthy_targets": len(healthy)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("params", help="params YAML (the same file `runbook apply` takes)")
    parser.add_argument("--verify-only", action="store_true", help="only the verification reads")
    args = parser.parse_args(argv)
    p = load_params(args.params)
    session = boto3.Session(region_name=p.region)
    counted = Counted(session)
    built = None if args.verify_only else build(session, p)
    checked = verify(session, p)
    out = {"seconds": round(time.monotonic() - _T0, 3), "built": built, "verified": checked, **counted.summary()}
    print(json.dumps(out))
    return 0 if checked["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
