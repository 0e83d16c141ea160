"""The embedded sandbox: moto over HTTP plus the AWS behaviour it lacks (lib/sandbox)."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from vpclink_runbooks.sandbox import faults
from vpclink_runbooks.sandbox.server import Delays, start_sandbox
from vpclink_runbooks.sandbox.world import WorldSpec, seed_world

REGION = "eu-west-2"
FAST = Config(retries={"mode": "standard", "max_attempts": 3})
WAIT = {"Delay": 1, "MaxAttempts": 20}


@pytest.fixture(scope="module")
def sandbox():
    sb = start_sandbox(delays=Delays(nlb_provisioning=0.3, vpc_link_pending=0.3, task_start=0.2, target_healthy=0.2),
                       world=WorldSpec())
    yield sb
    sb.stop()


def client(sb, service, region=REGION, config=FAST):
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=sb.endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=config,
    )


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def make_nlb(sb, subnets=None):
    elb = client(sb, "elbv2")
    lb = elb.create_load_balancer(
        Name=_name("nlb"), Type="network", Scheme="internal", Subnets=subnets or sb.world["subnet_ids"]
    )["LoadBalancers"][0]
    return elb, lb


def test_env_and_session(sandbox):
    env = sandbox.env()
    assert env["AWS_ENDPOINT_URL"] == sandbox.endpoint
    assert env["AWS_ACCESS_KEY_ID"] == "testing" and env["AWS_DEFAULT_REGION"] == REGION
    ident = sandbox.session(REGION).client("sts").get_caller_identity()
    assert ident["Account"] == sandbox.account_id == "123456789012"


def test_world_seeding_non_default_spec(sandbox):
    spec = WorldSpec(
        region="ap-southeast-2",
        vpc_id="vpc-0123456789abcdef0",
        vpc_cidr="10.77.0.0/16",
        cluster="syd-ecs",
        az_count=3,
        instances_per_az=1,
        cluster_security_group_name="syd-ecs-nodes",
        domain_name="api.syd.example.org",
        other_api_name="billing-api",
        other_base_path="billing",
        other_stage="live",
    )
    w = seed_world(sandbox.session(spec.region), spec)
    r = "ap-southeast-2"
    ec2, ecs, apigw = client(sandbox, "ec2", r), client(sandbox, "ecs", r), client(sandbox, "apigateway", r)
    assert w["vpc_id"] == "vpc-0123456789abcdef0"
    assert ec2.describe_vpcs(VpcIds=[w["vpc_id"]])["Vpcs"][0]["CidrBlock"] == "10.77.0.0/16"
    subnets = ec2.describe_subnets(SubnetIds=w["subnet_ids"])["Subnets"]
    assert len({s["AvailabilityZone"] for s in subnets}) == 3 and len(subnets) == 3
    in_vpc = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [w["vpc_id"]]}])["Subnets"]
    assert sorted(s["SubnetId"] for s in in_vpc) == sorted(w["subnet_ids"] + w["public_subnet_ids"])
    assert any(v["IsDefault"] for v in ec2.describe_vpcs()["Vpcs"])  # moto's default VPC is a separate VPC
    for sid in w["subnet_ids"]:
        rts = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [sid]}])["RouteTables"]
        assert rts and not any(rt_.get("GatewayId", "").startswith("igw-") for rt_ in rts[0]["Routes"])
    pub = w["public_subnet_ids"][0]
    rts = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [pub]}])["RouteTables"]
    assert any(r_.get("GatewayId", "").startswith("igw-") for r_ in rts[0]["Routes"])
    sg = ec2.describe_security_groups(GroupIds=[w["security_group_id"]])["SecurityGroups"][0]
    assert sg["GroupName"] == "syd-ecs-nodes" and sg["VpcId"] == w["vpc_id"]
    reservations = ec2.describe_instances(InstanceIds=w["instance_ids"])["Reservations"]
    insts = [i for res in reservations for i in res["Instances"]]
    assert len(insts) == 3
    assert all(i["State"]["Name"] == "running" and i["SubnetId"] in w["subnet_ids"] for i in insts)
    assert all(g["GroupId"] == w["security_group_id"] for i in insts for g in i["SecurityGroups"])
    cis = ecs.describe_container_instances(cluster="syd-ecs", containerInstances=ecs.list_container_instances(
        cluster="syd-ecs")["containerInstanceArns"])["containerInstances"]
    assert sorted(c["ec2InstanceId"] for c in cis) == sorted(w["instance_ids"])
    assert all(c["status"] == "ACTIVE" for c in cis)
    dn = apigw.get_domain_name(domainName="api.syd.example.org")
    assert dn["regionalCertificateArn"] == w["certificate_arn"]
    assert dn["endpointConfiguration"]["types"] == ["REGIONAL"]
    maps = apigw.get_base_path_mappings(domainName="api.syd.example.org")["items"]
    assert maps == [{"basePath": "billing", "restApiId": w["other_api_id"], "stage": "live"}]
    assert apigw.get_rest_api(restApiId=w["other_api_id"])["name"] == "billing-api"
    cert = client(sandbox, "acm", r).describe_certificate(CertificateArn=w["certificate_arn"])["Certificate"]
    assert cert["DomainName"] == "api.syd.example.org" and cert["Status"] == "ISSUED"


def test_nlb_arn_is_net_and_provisions_then_active(sandbox):
    elb, lb = make_nlb(sandbox)
    assert ":loadbalancer/net/" in lb["LoadBalancerArn"]
    assert lb["State"]["Code"] == "provisioning"
    desc = elb.describe_load_balancers(LoadBalancerArns=[lb["LoadBalancerArn"]])["LoadBalancers"][0]
    assert desc["State"]["Code"] == "provisioning" and desc["Type"] == "network"
    elb.get_waiter("load_balancer_available").wait(LoadBalancerArns=[lb["LoadBalancerArn"]], WaiterConfig=WAIT)
    desc = elb.describe_load_balancers(Names=[lb["LoadBalancerName"]])["LoadBalancers"][0]
    assert desc["State"]["Code"] == "active"
    tg = elb.create_target_group(Name=_name("tg"), Protocol="TCP", Port=10000, VpcId=sandbox.world["vpc_id"],
                                 TargetType="instance")["TargetGroups"][0]
    listener = elb.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="TCP", Port=10000,
                                   DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
    assert ":listener/net/" in listener["Listeners"][0]["ListenerArn"]
    elb.modify_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"],
                                        Attributes=[{"Key": "load_balancing.cross_zone.enabled", "Value": "true"}])
    attrs = elb.describe_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]
    assert {"Key": "load_balancing.cross_zone.enabled", "Value": "true"} in attrs
    enis = client(sandbox, "ec2").describe_network_interfaces(
        Filters=[{"Name": "description", "Values": [f"ELB net/{lb['LoadBalancerName']}/*"]}])["NetworkInterfaces"]
    assert len(enis) == len(sandbox.world["subnet_ids"])


def active_nlb(sb):
    elb, lb = make_nlb(sb)
    elb.get_waiter("load_balancer_available").wait(LoadBalancerArns=[lb["LoadBalancerArn"]],
                                                   WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
    return elb, lb


def test_vpc_link_pending_then_available_and_failed_injection(sandbox):
    elb, lb = active_nlb(sandbox)
    apigw = client(sandbox, "apigateway")
    link = apigw.create_vpc_link(name=_name("link"), targetArns=[lb["LoadBalancerArn"]])
    assert link["status"] == "PENDING" and link["statusMessage"] == "VPC link is provisioning ENIs"
    assert apigw.get_vpc_link(vpcLinkId=link["id"])["status"] == "PENDING"
    import time

    time.sleep(0.4)
    assert apigw.get_vpc_link(vpcLinkId=link["id"])["status"] == "AVAILABLE"
    faults.set_vpc_link_status(sandbox.account_id, REGION, link["id"], "FAILED", "NLB is gone")
    got = apigw.get_vpc_link(vpcLinkId=link["id"])
    assert (got["status"], got["statusMessage"]) == ("FAILED", "NLB is gone")


def test_a_vpc_link_on_a_provisioning_nlb_fails_as_aws_says(sandbox):
    elb, lb = make_nlb(sandbox)
    assert elb.describe_load_balancers(LoadBalancerArns=[lb["LoadBalancerArn"]])["LoadBalancers"][0]["State"][
        "Code"] == "provisioning"
    apigw = client(sandbox, "apigateway")
    link = apigw.create_vpc_link(name=_name("link"), targetArns=[lb["LoadBalancerArn"]])  # accepted (202) ...
    assert link["status"] == "PENDING"
    got = apigw.get_vpc_link(vpcLinkId=link["id"])  # ... then FAILED, and it stays so once the NLB is active
    assert got["status"] == "FAILED" and got["statusMessage"].startswith("NLB is not in active state.")
    elb.get_waiter("load_balancer_available").wait(LoadBalancerArns=[lb["LoadBalancerArn"]],
                                                   WaiterConfig={"Delay": 0.1, "MaxAttempts": 50})
    assert apigw.get_vpc_link(vpcLinkId=link["id"])["status"] == "FAILED"
    apigw.delete_vpc_link(vpcLinkId=link["id"])


def test_delete_nlb_used_by_vpc_link_is_refused(sandbox):
    elb, lb = active_nlb(sandbox)
    apigw = client(sandbox, "apigateway")
    link = apigw.create_vpc_link(name=_name("link"), targetArns=[lb["LoadBalancerArn"]])
    with pytest.raises(ClientError) as err:
        elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    assert err.value.response["Error"]["Code"] == "ResourceInUse"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert link["id"] in err.value.response["Error"]["Message"]
    apigw.delete_vpc_link(vpcLinkId=link["id"])
    assert link["id"] not in [x["id"] for x in apigw.get_vpc_links()["items"]]
    elb.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    assert lb["LoadBalancerArn"] not in [x["LoadBalancerArn"] for x in elb.describe_load_balancers()["LoadBalancers"]]


def test_integration_keeps_connection_id_and_update_works(sandbox):
    apigw = client(sandbox, "apigateway")
    api = apigw.create_rest_api(name=_name("api"))["id"]
    root = apigw.get_resources(restApiId=api)["items"][0]["id"]
    res = apigw.create_resource(restApiId=api, parentId=root, pathPart="{proxy+}")["id"]
    apigw.put_method(restApiId=api, resourceId=res, httpMethod="ANY", authorizationType="NONE")
    put = apigw.put_integration(
        restApiId=api, resourceId=res, httpMethod="ANY", type="HTTP_PROXY", integrationHttpMethod="ANY",
        uri="http://nlb.internal:10000/{proxy}", connectionType="VPC_LINK", connectionId="${stageVariables.vpcLinkId}",
    )
    assert put["connectionId"] == "${stageVariables.vpcLinkId}" and put["connectionType"] == "VPC_LINK"
    got = apigw.get_integration(restApiId=api, resourceId=res, httpMethod="ANY")
    assert got["connectionId"] == "${stageVariables.vpcLinkId}"
    meth = apigw.get_method(restApiId=api, resourceId=res, httpMethod="ANY")
    assert meth["methodIntegration"]["connectionId"] == "${stageVariables.vpcLinkId}"
    upd = apigw.update_integration(restApiId=api, resourceId=res, httpMethod="ANY", patchOperations=[
        {"op": "replace", "path": "/uri", "value": "http://nlb.internal:10001/{proxy}"},
        {"op": "replace", "path": "/connectionId", "value": "abc123"},
    ])
    assert upd["uri"] == "http://nlb.internal:10001/{proxy}" and upd["connectionId"] == "abc123"
    got = apigw.get_integration(restApiId=api, resourceId=res, httpMethod="ANY")
    assert (got["uri"], got["connectionId"]) == ("http://nlb.internal:10001/{proxy}", "abc123")


def test_throttle_is_retried_by_standard_mode(sandbox, monkeypatch):
    # keep the retries but not the (random, up to seconds) backoff sleeps
    import botocore.retries.standard as std

    monkeypatch.setattr(std.ExponentialBackoff, "delay_amount", lambda self, context: 0.01)
    cfg = Config(retries={"mode": "standard", "max_attempts": 10})
    ecs, elb, ec2 = client(sandbox, "ecs", config=cfg), client(sandbox, "elbv2", config=cfg), client(
        sandbox, "ec2", config=cfg)
    apigw = client(sandbox, "apigateway", config=cfg)
    with faults.throttle(0.5, seed=7) as t:
        for _ in range(4):
            ecs.list_clusters()
            elb.describe_load_balancers()
            ec2.describe_vpcs()
            apigw.get_rest_apis()
    assert t.injected >= 5
    assert {"ecs", "elasticloadbalancing", "ec2", "apigateway"} <= set(t.by_service)
    with faults.server_error(0.3, seed=3) as e:
        for _ in range(5):
            ecs.list_clusters()
    assert e.injected >= 1
    raw = client(sandbox, "ecs", config=Config(retries={"mode": "standard", "max_attempts": 1}))
    with faults.throttle(1.0):
        with pytest.raises(ClientError) as err:
            raw.list_clusters()
    assert err.value.response["Error"]["Code"] == "ThrottlingException"
    raw_ec2 = client(sandbox, "ec2", config=Config(retries={"mode": "standard", "max_attempts": 1}))
    with faults.throttle(1.0, services={"ec2"}):
        with pytest.raises(ClientError) as err:
            raw_ec2.describe_vpcs()
    assert err.value.response["Error"]["Code"] == "RequestLimitExceeded"
    json.dumps(t.by_service)


def test_target_group_detaches_when_no_listener_forwards_to_it(sandbox):
    elbv2, lb = make_nlb(sandbox)
    vpc_id = sandbox.world["vpc_id"]
    first = elbv2.create_target_group(Name="detach-a", Protocol="TCP", Port=1001, VpcId=vpc_id)["TargetGroups"][0]
    second = elbv2.create_target_group(Name="detach-b", Protocol="TCP", Port=1002, VpcId=vpc_id)["TargetGroups"][0]
    listener = elbv2.create_listener(LoadBalancerArn=lb["LoadBalancerArn"], Protocol="TCP", Port=1001, DefaultActions=[
        {"Type": "forward", "TargetGroupArn": first["TargetGroupArn"]}])["Listeners"][0]

    def attached():
        groups = elbv2.describe_target_groups(TargetGroupArns=[first["TargetGroupArn"], second["TargetGroupArn"]])
        return {g["TargetGroupName"]: g["LoadBalancerArns"] for g in groups["TargetGroups"]}

    assert attached() == {"detach-a": [lb["LoadBalancerArn"]], "detach-b": []}
    elbv2.modify_listener(ListenerArn=listener["ListenerArn"], DefaultActions=[
        {"Type": "forward", "TargetGroupArn": second["TargetGroupArn"]}])
    assert attached() == {"detach-a": [], "detach-b": [lb["LoadBalancerArn"]]}
    elbv2.delete_listener(ListenerArn=listener["ListenerArn"])
    assert attached() == {"detach-a": [], "detach-b": []}


def test_instance_without_security_groups_gets_the_vpc_default_group(sandbox):
    ec2 = client(sandbox, "ec2")
    vpc_id = sandbox.world["vpc_id"]
    subnet = sandbox.world["subnet_ids"][0]
    instance = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnet)["Instances"][0]
    default = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                                                    {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [default[0]["GroupId"]]
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
