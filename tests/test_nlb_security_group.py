"""The NLB's own security group end to end (nlb.security_group, the default): apply creates the NLB in a group of
its own and the instances admit the host port only from that group; a request through the custom domain gets
through, and stops getting through when that one rule is revoked or the NLB's group judges the V1 link's
PrivateLink traffic; an NLB created without a group keeps its CIDR rules and plan says why; destroy deletes the
group once the NLB's interfaces are released. Also the sandbox's AWS rules for NLB groups."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from vpclink_runbooks import request
from vpclink_runbooks.run.runner import run

from .conftest import ROOT, write_params

pytestmark = pytest.mark.notebooks

LOCAL = str(ROOT / "params" / "local.yaml")
BASE, HOST_PORT = "local-orders", 10000


def ask() -> dict:
    """GET https://api.example.com/orders/items/1, through the sandbox's front."""
    return request.send("api.example.com", "orders", "items/1")


def error(result) -> object:
    return json.loads((result.run_dir / "run.json").read_text()).get("error")


def nlb(elbv2) -> dict:
    return elbv2.describe_load_balancers(Names=[f"{BASE}-nlb"])["LoadBalancers"][0]


def host_port_sources(ec2, vpc_id: str) -> dict[str, set[str]]:
    """{instance group: every source admitted on the host port} over the VPC's groups other than ours."""
    out: dict[str, set[str]] = {}
    for rule in ec2.describe_security_group_rules()["SecurityGroupRules"]:
        if rule["IsEgress"] or not (rule.get("FromPort", -1) <= HOST_PORT <= rule.get("ToPort", -1)):
            continue
        source = (rule.get("ReferencedGroupInfo") or {}).get("GroupId") or rule.get("CidrIpv4") or rule.get("CidrIpv6")
        out.setdefault(rule["GroupId"], set()).add(source)
    return out


@pytest.fixture(scope="module")
def applied(sandbox):
    result = run("apply", LOCAL)
    assert result.exit_code == 0, error(result)
    s = sandbox.session()
    return sandbox, s.client("ec2"), s.client("elbv2")


def test_apply_puts_the_nlb_in_its_own_group_and_the_instances_admit_only_that_group(applied):
    _, ec2, elbv2 = applied
    lb = nlb(elbv2)
    group = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{BASE}-nlb"]}])[
        "SecurityGroups"][0]
    assert lb["SecurityGroups"] == [group["GroupId"]]
    assert {t["Key"]: t["Value"] for t in group["Tags"]}["runbook:environment"] == "local"
    # A V1 link arrives over PrivateLink: the group does not judge it, and admits nothing else.
    assert lb["EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic"] == "off"
    assert [p for p in group["IpPermissions"]] == []
    sources = host_port_sources(ec2, lb["VpcId"])
    instance_groups = {g["GroupId"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]
                       for g in i["SecurityGroups"]}
    assert {g: sources.get(g) for g in instance_groups if g in sources} == {
        g: {group["GroupId"]} for g in instance_groups if g in sources}
    assert any(g in sources for g in instance_groups)


def test_a_request_gets_through_and_stops_when_the_rule_from_the_nlb_group_is_revoked(applied):
    _, ec2, elbv2 = applied
    answer = ask()
    assert (answer["status"], answer["hop"]) == (200, "service"), answer
    group_id = nlb(elbv2)["SecurityGroups"][0]
    rule = next(r for r in ec2.describe_security_group_rules()["SecurityGroupRules"]
                if (r.get("ReferencedGroupInfo") or {}).get("GroupId") == group_id)
    ec2.revoke_security_group_ingress(GroupId=rule["GroupId"], SecurityGroupRuleIds=[rule["SecurityGroupRuleId"]])
    answer = ask()
    assert (answer["status"], answer["hop"]) == (504, "security_group"), answer
    verify = run("verify", LOCAL)
    assert verify.exit_code == 1
    failed = {c["id"] for c in json.loads((verify.run_dir / "run.json").read_text())["checks"]
              if c["status"] == "fail"}
    assert "security_group.nlb_group" in failed, failed
    assert run("apply", LOCAL).exit_code == 0  # apply puts the one rule back
    assert ask()["status"] == 200


def test_privatelink_enforcement_on_drops_the_v1_links_traffic_and_apply_turns_it_off(applied):
    _, _, elbv2 = applied
    lb = nlb(elbv2)
    elbv2.set_security_groups(LoadBalancerArn=lb["LoadBalancerArn"], SecurityGroups=lb["SecurityGroups"],
                              EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic="on")
    answer = ask()
    assert (answer["status"], answer["hop"]) == (504, "security_group"), answer
    assert run("apply", LOCAL).exit_code == 0
    assert nlb(elbv2)["EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic"] == "off"
    assert ask()["status"] == 200


def test_destroy_deletes_the_nlb_group_after_its_interfaces_are_released(applied):
    _, ec2, _ = applied
    assert run("destroy", LOCAL, yes=True).exit_code == 0
    left = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [f"{BASE}-nlb"]}])
    assert left["SecurityGroups"] == []
    rules = ec2.describe_security_group_rules(Filters=[{"Name": "tag:runbook:environment", "Values": ["local"]}])
    assert rules["SecurityGroupRules"] == []


def test_an_nlb_created_without_a_group_keeps_its_cidr_rules_and_plan_says_why(applied, tmp_path):
    _, ec2, elbv2 = applied
    without = write_params(tmp_path, nlb__security_group=False)
    assert run("apply", str(without)).exit_code == 0
    lb = nlb(elbv2)
    assert lb.get("SecurityGroups", []) == []
    with pytest.raises(ClientError) as refused:  # AWS: groups only at creation
        elbv2.set_security_groups(LoadBalancerArn=lb["LoadBalancerArn"], SecurityGroups=["sg-12345678"])
    assert refused.value.response["Error"]["Code"] == "InvalidConfigurationRequest"
    plan = run("plan", LOCAL)
    assert plan.exit_code == 0
    rows = json.loads((plan.run_dir / "run.json").read_text())
    text = json.dumps(rows)
    assert "only when it is created" in text and "runbook destroy" in text
    assert ask()["status"] == 200
    assert run("destroy", LOCAL, yes=True).exit_code == 0


def test_the_sandbox_keeps_a_deleted_nlbs_interfaces_a_while(sandbox):
    s = sandbox.session()
    ec2, elbv2 = s.client("ec2"), s.client("elbv2")
    subnet = ec2.describe_subnets()["Subnets"][0]
    group = ec2.create_security_group(GroupName="linger", Description="t", VpcId=subnet["VpcId"])["GroupId"]
    lb = elbv2.create_load_balancer(Name="linger", Subnets=[subnet["SubnetId"]], Scheme="internal",
                                    Type="network", SecurityGroups=[group])["LoadBalancers"][0]
    assert lb["EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic"] == "on"  # AWS's default
    elbv2.delete_load_balancer(LoadBalancerArn=lb["LoadBalancerArn"])
    with pytest.raises(ClientError) as held:
        ec2.delete_security_group(GroupId=group)
    assert held.value.response["Error"]["Code"] == "DependencyViolation"
    deadline = time.monotonic() + 10
    while True:
        try:
            ec2.delete_security_group(GroupId=group)
            break
        except ClientError:
            assert time.monotonic() < deadline, "the interfaces were never released"
            time.sleep(0.2)
