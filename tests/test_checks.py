"""Unit tests of verify's pure checks, on hand-made inventories: the failure modes the sandbox cannot stage
(NLB security groups, placement events, quotas, wide rules) and the verdict's rendering."""

from __future__ import annotations

import pytest

from vpclink_runbooks import checks, repair
from vpclink_runbooks.checks import Inventory, Result
from vpclink_runbooks.names import Names
from vpclink_runbooks.params import load_params, load_raw, parse_params

from .conftest import ROOT

PARAMS = load_params(ROOT / "params" / "local.yaml")
SUBNETS = {"subnet-a": {"SubnetId": "subnet-a", "CidrBlock": "10.42.0.0/20"},
           "subnet-b": {"SubnetId": "subnet-b", "CidrBlock": "10.42.16.0/20"}}


_raw = load_raw(ROOT / "params" / "local.yaml")
NO_GROUP = parse_params({**_raw, "nlb": {**_raw.get("nlb", {}), "security_group": False}},
                        "local, nlb.security_group false")


def inventory(params=PARAMS, **fields) -> Inventory:
    return Inventory(params=params, names=Names(params), **fields)


def by_id(results: list[Result], check_id: str) -> Result:
    return next(r for r in results if r.id == check_id)


def nlb(**extra) -> dict:
    return {"LoadBalancerName": "local-orders-nlb", "LoadBalancerArn": "arn:nlb", "DNSName": "nlb.example",
            "Type": "network", "Scheme": "internal", "State": {"Code": "active"},
            "AvailabilityZones": [{"ZoneName": "eu-west-2a", "SubnetId": "subnet-a"},
                                  {"ZoneName": "eu-west-2b", "SubnetId": "subnet-b"}], **extra}


def rule(cidr: str, port: int = 10000, group: str = "sg-nlb", protocol: str = "tcp") -> dict:
    return {"GroupId": group, "IpProtocol": protocol, "FromPort": port, "ToPort": port, "CidrIpv4": cidr,
            "IsEgress": False, "SecurityGroupRuleId": f"sgr-{cidr}"}


@pytest.mark.parametrize("lb_fields, rules, status", [
    ({}, [], "pass"),  # no security groups on the NLB: nothing filters PrivateLink traffic
    ({"SecurityGroups": ["sg-nlb"]}, [], "fail"),  # enforced by default, nothing admitted
    ({"SecurityGroups": ["sg-nlb"], "EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic": "off"}, [], "pass"),
    ({"SecurityGroups": ["sg-nlb"]}, [rule("10.42.0.0/16")], "pass"),  # a VPC-wide rule covers both subnets
    ({"SecurityGroups": ["sg-nlb"]}, [rule("10.42.0.0/20")], "fail"),  # one subnet left out
])
def test_nlb_security_groups_enforced_on_privatelink_traffic(lb_fields, rules, status):
    # groups the runbook did not make (nlb.security_group false): explained, not changed
    inv = inventory(NO_GROUP, lb=nlb(**lb_fields), subnets=SUBNETS, nlb_rules=rules, cross_zone=True)
    result = by_id(checks.nlb_active_internal(inv), "nlb.security_groups")
    assert result.status == status, result.detail
    if status == "fail":
        assert "PrivateLink" in result.detail and "10.42.16.0/20" in result.detail
        assert repair.owner(result) is None  # the NLB's security groups are explained, not changed


OWN = {"GroupId": "sg-own", "GroupName": Names(PARAMS).nlb_security_group}


@pytest.mark.parametrize("lb_fields, groups, status, words", [
    ({}, {}, "warn", "only at creation"),  # an NLB made before groups: explained, kept working
    ({"SecurityGroups": ["sg-own"]}, {"own": OWN}, "fail", "EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic on"),
    ({"SecurityGroups": ["sg-own"], "EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic": "off"}, {"own": OWN},
     "pass", "sg-own"),
    ({"SecurityGroups": ["sg-other"], "EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic": "off"}, {"own": OWN},
     "fail", "not in the runbook's group"),
])
def test_the_nlbs_own_group_and_its_privatelink_setting(lb_fields, groups, status, words):
    named = {Names(PARAMS).nlb_security_group: OWN} if groups else {}
    inv = inventory(lb=nlb(**lb_fields), subnets=SUBNETS, cross_zone=True, groups=named)
    result = by_id(checks.nlb_active_internal(inv), "nlb.own_security_group")
    assert (result.status, words in result.detail) == (status, True), result.detail
    if status == "fail":
        assert repair.owner(result) == "nlb"


def test_instances_admit_the_host_port_from_the_nlbs_group_not_by_cidr():
    instance = {"InstanceId": "i-1", "State": {"Name": "running"}, "SecurityGroups": [{"GroupId": "sg-i"}],
                "Placement": {"AvailabilityZone": "eu-west-2a"}}
    by_group = {"GroupId": "sg-i", "IpProtocol": "tcp", "FromPort": 10000, "ToPort": 10000,
                "ReferencedGroupInfo": {"GroupId": "sg-own"}, "SecurityGroupRuleId": "sgr-g"}
    inv = inventory(lb=nlb(SecurityGroups=["sg-own"]), subnets=SUBNETS, instances={"i-1": instance},
                    all_rules=[by_group])
    assert [(r.id, r.status) for r in checks.security_group_admits_nlb(inv)] == [("security_group.nlb_group", "pass")]
    inv.all_rules = [rule("10.42.0.0/16", group="sg-i")]  # works, but admits every host of the VPC too
    result = by_id(checks.security_group_admits_nlb(inv), "security_group.nlb_group")
    assert result.status == "warn" and "by CIDR" in result.detail
    inv.all_rules = [dict(by_group, ReferencedGroupInfo={"GroupId": "sg-elsewhere"})]
    result = by_id(checks.security_group_admits_nlb(inv), "security_group.nlb_group")
    assert result.status == "fail" and repair.owner(result) == "ecs"


def test_security_group_rule_may_be_wider_than_a_subnet_but_not_the_internet():
    instance = {"InstanceId": "i-1", "State": {"Name": "running"}, "SecurityGroups": [{"GroupId": "sg-i"}],
                "Placement": {"AvailabilityZone": "eu-west-2a"}}
    inv = inventory(NO_GROUP, lb=nlb(), subnets=SUBNETS, instances={"i-1": instance},
                    all_rules=[rule("10.42.0.0/16", group="sg-i")])
    results = checks.security_group_admits_nlb(inv)
    assert [r.status for r in results] == ["pass"]
    inv.all_rules = [rule("10.42.0.0/20", group="sg-i"), rule("0.0.0.0/0", group="sg-i", protocol="-1")]
    results = {r.id: r for r in checks.security_group_admits_nlb(inv)}
    assert results["security_group.nlb_subnets"].status == "pass"  # 0.0.0.0/0 admits it, but...
    assert results["security_group.no_wide_rule"].status == "fail"  # ...is flagged, and not the runbook's
    assert repair.owner(results["security_group.no_wide_rule"]) is None


def service(events: list[str], **extra) -> dict:
    return {"runningCount": 2, "desiredCount": 2, "events": [{"message": m} for m in events], "loadBalancers": [],
            "deploymentConfiguration": {"minimumHealthyPercent": 50, "maximumPercent": 100}, **extra}


def test_port_conflicts_since_the_last_steady_state_fail_the_service_hop():
    stuck = ("(service orders) was unable to place a task because no container instance met all of its "
             "requirements. The closest matching (container-instance abc) is already using a port required by "
             "your task.")
    now = by_id(checks.service_running(inventory(service=service([stuck, "(service orders) has reached a steady "
                                                                   "state."]))), "service.placement")
    assert now.status == "fail" and "already using a port required" in now.detail
    before = by_id(checks.service_running(inventory(service=service(["(service orders) has reached a steady state.",
                                                                      stuck]))), "service.placement")
    assert before.status == "pass"


def test_vpc_link_quota():
    full = checks.vpc_link_available(inventory(vpc_link_count=20))
    assert {(r.id, r.status) for r in full} == {("vpc_link.exists", "fail"), ("vpc_link.quota", "fail")}
    link = {"id": "l1", "status": "AVAILABLE", "targetArns": ["arn:nlb"]}
    near = checks.vpc_link_available(inventory(link=link, lb=nlb(), vpc_link_count=19))
    assert by_id(near, "vpc_link.quota").status == "warn"
    assert by_id(near, "vpc_link.status").status == "pass"


@pytest.mark.parametrize("timeout, status", [(29000, "pass"), (5000, "fail"), (60000, "warn")])
def test_integration_timeout(timeout, status):
    integration = {"type": "HTTP_PROXY", "connectionType": "VPC_LINK", "connectionId": "${stageVariables.vpcLinkId}",
                   "uri": "http://nlb.example:10000/{proxy}", "timeoutInMillis": timeout}
    results = checks.integration_reaches_listener(inventory(integration=integration, lb=nlb()))
    assert by_id(results, "integration.target").status == "pass"
    assert by_id(results, "integration.timeout").status == status


def test_verdict_names_the_first_broken_hop_in_request_order():
    results = [Result("service.running", "service", "fail", "running 0/2", "redeploy"),
               Result("listener.10000", "listener", "fail", "no listener on port 10000", "create it"),
               Result("mapping.target", "mapping", "pass", "ok")]
    verdict = checks.verdict(results)
    assert not verdict.ok and verdict.hop == "listener"
    assert str(verdict).startswith("BROKEN at hop 'listener'") and "service.running" in repr(verdict)
    assert "#a50e0e" in verdict._repr_html_() and "no listener on port 10000" in verdict._repr_html_()
    ok = checks.verdict([Result("mapping.target", "mapping", "pass", "ok"),
                         Result("endpoint.custom_domain", "endpoint", "skip", "does not resolve here")])
    assert ok.ok and "VERIFIED" in str(ok) and "#137333" in ok._repr_html_()
