"""Sandbox behaviour the V2 / awsvpc paths rely on (lib/sandbox/behaviours.py), through plain boto3."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from vpclink_runbooks.sandbox.behaviours import set_vpc_link_v2_status


@pytest.fixture
def network(sandbox):
    s = sandbox.session()
    ec2 = s.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": ["vpc-0a1b2c3d4e5f60718"]}])["Vpcs"][0]
    subnets = [sn["SubnetId"] for sn in ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]][:2]
    group = ec2.create_security_group(GroupName=f"link-{time.monotonic_ns()}", Description="test",
                                      VpcId=vpc["VpcId"])["GroupId"]
    return s, subnets, group


def _enis(ec2, group: str) -> list[dict]:
    return ec2.describe_network_interfaces(Filters=[{"Name": "group-id", "Values": [group]}])["NetworkInterfaces"]


def test_v2_link_pending_then_available_with_interfaces_in_its_group(network):
    s, subnets, group = network
    gw2, ec2 = s.client("apigatewayv2"), s.client("ec2")
    link = gw2.create_vpc_link(Name="t", SubnetIds=subnets, SecurityGroupIds=[group])
    assert link["VpcLinkStatus"] == "PENDING"
    assert len(_enis(ec2, group)) == len(subnets)
    deadline = time.monotonic() + 10
    while gw2.get_vpc_link(VpcLinkId=link["VpcLinkId"])["VpcLinkStatus"] != "AVAILABLE":
        assert time.monotonic() < deadline, "the link never became AVAILABLE"
        time.sleep(0.2)
    # its interfaces keep the group in use; once the link is deleted the group can go
    with pytest.raises(ClientError) as refused:
        ec2.delete_security_group(GroupId=group)
    assert refused.value.response["Error"]["Code"] == "DependencyViolation"
    gw2.delete_vpc_link(VpcLinkId=link["VpcLinkId"])
    assert _enis(ec2, group) == []
    ec2.delete_security_group(GroupId=group)


def test_v2_link_status_can_be_forced(sandbox, network):
    s, subnets, group = network
    gw2 = s.client("apigatewayv2")
    link = gw2.create_vpc_link(Name="t", SubnetIds=subnets, SecurityGroupIds=[group])
    set_vpc_link_v2_status(sandbox.account_id, sandbox.region, link["VpcLinkId"], "INACTIVE")
    got = gw2.get_vpc_link(VpcLinkId=link["VpcLinkId"])
    assert got["VpcLinkStatus"] == "INACTIVE" and got["VpcLinkStatusMessage"]
    gw2.delete_vpc_link(VpcLinkId=link["VpcLinkId"])


def test_group_referenced_by_another_groups_rule_cannot_be_deleted(network):
    s, _subnets, group = network
    ec2 = s.client("ec2")
    vpc_id = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]["VpcId"]
    other = ec2.create_security_group(GroupName=f"alb-{time.monotonic_ns()}", Description="t", VpcId=vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=other, IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": group}]}])
    with pytest.raises(ClientError) as refused:
        ec2.delete_security_group(GroupId=group)
    assert refused.value.response["Error"]["Code"] == "DependencyViolation"
    ec2.delete_security_group(GroupId=other)
    ec2.delete_security_group(GroupId=group)


def test_awsvpc_tasks_start_in_a_vpc_without_dns_hostnames(sandbox):
    """A VPC created with defaults (DNS hostnames off): its interfaces still have private DNS names, so awsvpc
    tasks start (moto's ECS failed on them)."""
    s = sandbox.session()
    ec2, ecs = s.client("ec2"), s.client("ecs")
    vpc = ec2.create_vpc(CidrBlock="172.31.0.0/16")["Vpc"]["VpcId"]
    az = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneName"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="172.31.0.0/20", AvailabilityZone=az)["Subnet"]["SubnetId"]
    eni = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]
    assert eni["PrivateDnsName"].startswith("ip-172-31-")
    ecs.create_cluster(clusterName="nodns")
    ecs.register_task_definition(family="nodns", networkMode="awsvpc", requiresCompatibilities=["FARGATE"],
                                 cpu="256", memory="512",
                                 containerDefinitions=[{"name": "app", "image": "app:1", "essential": True,
                                                        "memory": 512, "portMappings": [{"containerPort": 8080}]}])
    group = ec2.create_security_group(GroupName="nodns-task", Description="task", VpcId=vpc)["GroupId"]
    ecs.create_service(cluster="nodns", serviceName="app", taskDefinition="nodns", desiredCount=1,
                       launchType="FARGATE",
                       networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        arns = ecs.list_tasks(cluster="nodns", serviceName="app")["taskArns"]
        if arns and ecs.describe_tasks(cluster="nodns", tasks=arns)["tasks"][0]["lastStatus"] == "RUNNING":
            break
        time.sleep(0.2)
    else:
        pytest.fail("the awsvpc task never reached RUNNING")
