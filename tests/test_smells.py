"""Security smells on the sandbox: after apply, someone opens the host port to ::/0 and to the whole VPC, and
leaves an internet-facing load balancer with the environment's other name. Verify still verifies (requests work)
and warns about each with a remedy; nothing of that is the runbook's to change, so a second apply leaves it."""

from __future__ import annotations

import json

import pytest

from vpclink_runbooks.params import load_params
from vpclink_runbooks.run.runner import run

from .conftest import ROOT

pytestmark = pytest.mark.notebooks

LOCAL = ROOT / "params" / "local.yaml"


def _record(result) -> dict:
    return json.loads((result.run_dir / "run.json").read_text())


def test_verify_warns_about_the_smells_and_still_verifies(sandbox):
    params = load_params(LOCAL)
    assert run("apply", str(LOCAL)).exit_code == 0
    s = sandbox.session(params.region)
    ec2, elbv2 = s.client("ec2"), s.client("elbv2")
    vpc = ec2.describe_vpcs(VpcIds=[params.vpc_id])["Vpcs"][0]
    group = ec2.describe_security_groups(Filters=[{"Name": "group-name",
                                                   "Values": [f"{params.cluster}-instances"]}])["SecurityGroups"][0]
    port = params.service.host_port
    ec2.authorize_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[
        {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]},
        {"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "IpRanges": [{"CidrIp": vpc["CidrBlock"]}]}])
    subnets = [sn["SubnetId"] for sn in ec2.describe_subnets(
        Filters=[{"Name": "vpc-id", "Values": [params.vpc_id]}])["Subnets"]]
    elbv2.create_load_balancer(Name="local-orders-alb", Type="application", Scheme="internet-facing",
                               Subnets=subnets)

    verified = run("verify", str(LOCAL))
    record = _record(verified)
    assert verified.exit_code == 0, record.get("error")
    warned = {c["id"]: c for c in record["checks"] if c["status"] == "warn"}
    assert {"security_group.open_to_ipv6_world", "security_group.open_to_vpc",
            "nlb.other_internet_facing"} <= set(warned), sorted(warned)
    assert group["GroupId"] in warned["security_group.open_to_ipv6_world"]["detail"]
    assert vpc["CidrBlock"] in warned["security_group.open_to_vpc"]["detail"]
    assert "local-orders-alb" in warned["nlb.other_internet_facing"]["remedy"]
    assert not [c for c in record["checks"] if c["status"] == "fail"]

    again = run("apply", str(LOCAL))
    assert again.exit_code == 0 and _record(again)["changes"] == []  # the smells are not the runbook's to undo
