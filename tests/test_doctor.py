"""The doctor end to end: apply once, then for each fault injected with plain boto3 (or the sandbox's fault
hooks), `runbook verify` names exactly the broken hop, and `runbook repair --yes` restores a passing verify for
every fault the runbook owns; what it does not own is explained and left alone."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import nbformat
import pytest

from vpclink_runbooks import repair, request
from vpclink_runbooks.checks import HOPS
from vpclink_runbooks.present import diagram
from vpclink_runbooks.run.runner import run
from vpclink_runbooks.sandbox import faults

from .conftest import ROOT

pytestmark = pytest.mark.notebooks

LOCAL = str(ROOT / "params" / "local.yaml")
ENV, BASE, CLUSTER, DOMAIN = "local", "local-orders", "local-ecs", "api.example.com"


def record(result) -> dict:
    return json.loads((result.run_dir / "run.json").read_text())


def failing(rec: dict) -> list[dict]:
    return [c for c in rec["checks"] if c["status"] == "fail"]


class Chain:
    """What apply built, found with plain boto3 against the sandbox (what a person breaking it by hand does)."""

    def __init__(self, box):
        self.box = box
        s = box.session()
        self.ec2, self.elbv2, self.gw, self.ecs = s.client("ec2"), s.client("elbv2"), s.client("apigateway"), \
            s.client("ecs")

    @property
    def lb(self) -> dict:
        return self.elbv2.describe_load_balancers(Names=[f"{BASE}-nlb"])["LoadBalancers"][0]

    @property
    def listener(self) -> dict:
        return self.elbv2.describe_listeners(LoadBalancerArn=self.lb["LoadBalancerArn"])["Listeners"][0]

    @property
    def target_group(self) -> dict:
        return self.elbv2.describe_target_groups(Names=[f"{BASE}-10000"])["TargetGroups"][0]

    def targets(self) -> list[dict]:
        return self.elbv2.describe_target_health(
            TargetGroupArn=self.target_group["TargetGroupArn"])["TargetHealthDescriptions"]

    @property
    def api_id(self) -> str:
        return next(a["id"] for a in self.gw.get_rest_apis()["items"] if a["name"] == BASE)

    @property
    def link(self) -> dict:
        return next(v for v in self.gw.get_vpc_links()["items"] if v["name"] == f"{BASE}-link")

    def proxy_id(self) -> str:
        return next(r["id"] for r in self.gw.get_resources(restApiId=self.api_id)["items"]
                    if r.get("pathPart") == "{proxy+}")

    def integration(self) -> dict:
        return self.gw.get_integration(restApiId=self.api_id, resourceId=self.proxy_id(), httpMethod="ANY")

    @property
    def service(self) -> dict:
        return self.ecs.describe_services(cluster=CLUSTER, services=["orders"])["services"][0]

    def wait_service_stable(self) -> None:
        self.ecs.get_waiter("services_stable").wait(cluster=CLUSTER, services=["orders"],
                                                    WaiterConfig={"Delay": 1, "MaxAttempts": 120})

    def instance_in_second_az(self) -> str:
        return self.box.world["instance_ids"][-1]


# ---- the faults ---------------------------------------------------------------------------------------------

def delete_security_group_rule(c: Chain) -> None:
    rules = c.ec2.describe_security_group_rules(
        Filters=[{"Name": "tag:runbook:environment", "Values": [ENV]}])["SecurityGroupRules"]
    # the instances' rule from the NLB's own group (a CIDR rule per NLB subnet without one)
    rule = sorted(rules, key=lambda r: r.get("CidrIpv4") or "")[0]
    c.ec2.revoke_security_group_ingress(GroupId=rule["GroupId"], SecurityGroupRuleIds=[rule["SecurityGroupRuleId"]])


def enforce_privatelink_inbound_rules(c: Chain) -> None:
    lb = c.lb
    c.elbv2.set_security_groups(LoadBalancerArn=lb["LoadBalancerArn"], SecurityGroups=lb["SecurityGroups"],
                                EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic="on")


def change_listener_port(c: Chain) -> None:
    c.elbv2.modify_listener(ListenerArn=c.listener["ListenerArn"], Port=10001)


def forward_listener_elsewhere(c: Chain) -> None:
    try:  # injected again (test_iam_enforced): the group from the first time
        other = c.elbv2.describe_target_groups(Names=["elsewhere-10001"])["TargetGroups"][0]
    except c.elbv2.exceptions.TargetGroupNotFoundException:
        other = c.elbv2.create_target_group(Name="elsewhere-10001", Protocol="TCP", Port=10001,
                                            VpcId=c.lb["VpcId"], TargetType="instance")["TargetGroups"][0]
    c.elbv2.modify_listener(ListenerArn=c.listener["ListenerArn"],
                            DefaultActions=[{"Type": "forward", "TargetGroupArn": other["TargetGroupArn"]}])


def point_stage_variable_elsewhere(c: Chain) -> None:
    c.gw.update_stage(restApiId=c.api_id, stageName="prod", patchOperations=[
        {"op": "replace", "path": "/variables/vpcLinkId", "value": "abcdef1234"}])


def delete_base_path_mapping(c: Chain) -> None:
    c.gw.delete_base_path_mapping(domainName=DOMAIN, basePath="orders")


def move_mapping_to_another_stage(c: Chain) -> None:
    c.gw.create_deployment(restApiId=c.api_id, stageName="canary", description="someone's canary")
    c.gw.update_base_path_mapping(domainName=DOMAIN, basePath="orders", patchOperations=[
        {"op": "replace", "path": "/stage", "value": "canary"}])


def change_integration_without_redeploying(c: Chain) -> None:
    current = c.integration()
    c.gw.put_integration(restApiId=c.api_id, resourceId=c.proxy_id(), httpMethod="ANY", type="HTTP_PROXY",
                         integrationHttpMethod="ANY", uri=current["uri"].replace("/{proxy}", "/v2/{proxy}"),
                         connectionType="VPC_LINK", connectionId=current["connectionId"],
                         requestParameters=current["requestParameters"], timeoutInMillis=29000)


def lower_integration_timeout(c: Chain) -> None:
    c.gw.update_integration(restApiId=c.api_id, resourceId=c.proxy_id(), httpMethod="ANY", patchOperations=[
        {"op": "replace", "path": "/timeoutInMillis", "value": "5000"}])


def cross_zone_off_with_targets_in_one_az(c: Chain) -> None:
    c.elbv2.modify_load_balancer_attributes(LoadBalancerArn=c.lb["LoadBalancerArn"], Attributes=[
        {"Key": "load_balancing.cross_zone.enabled", "Value": "false"}])
    c.elbv2.deregister_targets(TargetGroupArn=c.target_group["TargetGroupArn"],
                               Targets=[{"Id": c.instance_in_second_az(), "Port": 10000}])


def deregister_targets(c: Chain) -> None:
    c.elbv2.deregister_targets(TargetGroupArn=c.target_group["TargetGroupArn"],
                               Targets=[{"Id": t["Target"]["Id"], "Port": t["Target"]["Port"]} for t in c.targets()])


def fail_vpc_link(c: Chain) -> None:
    faults.set_vpc_link_status(c.box.account_id, c.box.region, c.link["id"], "FAILED",
                               "NLB is not available")


def change_task_definition_host_port(c: Chain) -> None:
    td = c.ecs.describe_task_definition(taskDefinition=c.service["taskDefinition"])["taskDefinition"]
    container = dict(td["containerDefinitions"][0])
    container["portMappings"] = [{"containerPort": 8080, "hostPort": 10001, "protocol": "tcp"}]
    arn = c.ecs.register_task_definition(family=td["family"], networkMode="bridge", containerDefinitions=[container],
                                         executionRoleArn=td["executionRoleArn"],
                                         requiresCompatibilities=["EC2"])["taskDefinition"]["taskDefinitionArn"]
    c.ecs.update_service(cluster=CLUSTER, service="orders", taskDefinition=arn)
    c.wait_service_stable()


def make_deployments_stall(c: Chain) -> None:
    c.ecs.update_service(cluster=CLUSTER, service="orders",
                         deploymentConfiguration={"minimumHealthyPercent": 100, "maximumPercent": 100})


def stop_instance(c: Chain) -> None:
    c.ec2.stop_instances(InstanceIds=[c.instance_in_second_az()])


def start_instance(c: Chain) -> None:
    c.ec2.start_instances(InstanceIds=[c.instance_in_second_az()])


@dataclass
class Fault:
    name: str
    inject: Callable[[Chain], None]
    hops: set[str]  # exactly the hops that must fail
    # What a request through the custom domain meets after the fault, as on AWS (docs/request-outcomes.md):
    # (status, the hop that decided it); "service" when the service still answers.
    answer: tuple[int, str] = (200, "service")
    owned: bool = True
    restore: Callable[[Chain], None] | None = None  # for faults repair must leave alone

    @property
    def failing_hops(self) -> set[str]:
        """The hops verify fails: the fault's own, and the end-to-end request's when traffic no longer flows."""
        return self.hops | ({"endpoint"} if self.answer[1] != "service" else set())

    def __str__(self) -> str:
        return self.name


FAULTS = [
    Fault("security group rule deleted", delete_security_group_rule, {"security_group"}, (504, "security_group")),
    Fault("NLB group judges PrivateLink traffic", enforce_privatelink_inbound_rules, {"nlb"},
          (504, "security_group")),
    Fault("listener port changed", change_listener_port, {"listener"}, (500, "listener")),
    Fault("listener forwards to another target group", forward_listener_elsewhere, {"listener"}, (500, "targets")),
    Fault("stage variable names another link", point_stage_variable_elsewhere, {"stage"}, (500, "stage")),
    Fault("base path mapping deleted", delete_base_path_mapping, {"mapping"}, (403, "mapping")),
    Fault("mapping moved to another stage", move_mapping_to_another_stage, {"mapping"}, (500, "stage")),
    Fault("integration changed, stage not redeployed", change_integration_without_redeploying, {"stage"}),
    Fault("integration timeout lowered", lower_integration_timeout, {"integration"}),
    Fault("cross-zone off, targets in one AZ", cross_zone_off_with_targets_in_one_az, {"nlb", "targets"}),
    Fault("targets deregistered", deregister_targets, {"targets"}, (500, "targets")),
    Fault("VPC link FAILED", fail_vpc_link, {"vpc_link"}, (500, "vpc_link")),
    Fault("task definition host port changed", change_task_definition_host_port, {"task_definition"},
          (504, "security_group")),
    Fault("deployment configuration cannot roll", make_deployments_stall, {"service"}),
    Fault("instance stopped", stop_instance, {"targets"}, owned=False, restore=start_instance),
]


# ---- tests ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def applied(sandbox):
    result = run("apply", LOCAL)
    assert result.exit_code == 0, record(result).get("error")
    return Chain(sandbox)


def test_hop_vocabulary_matches_the_diagram():
    assert set(HOPS) <= set(diagram.HOP_IDS)
    assert set(diagram.HOP_IDS) - set(HOPS) == {"domain"}


def test_healthy_chain_passes_every_check_and_opens_with_the_verdict(applied):
    result = run("verify", LOCAL)
    rec = record(result)
    assert result.exit_code == 0 and rec["status"] == "succeeded", failing(rec)
    statuses = {c["id"]: c["status"] for c in rec["checks"]}
    not_passed = {i: s for i, s in statuses.items() if s != "pass"}
    assert not_passed == {}, not_passed  # the end-to-end request and TestInvokeMethod pass for real
    assert rec["request"]["status"] == 200 and rec["request"]["hop"] == "service" and rec["request"]["answered_by"]
    answer = through_the_domain()
    assert answer["status"] == 200 and json.loads(answer["body"])["container_port"] == 8080, answer
    assert {c["hop"] for c in rec["checks"]} == set(HOPS)
    for c in rec["checks"]:  # every check knows whether repair owns its fix
        assert c["id"] in repair.OWNER or c["id"].split(".")[0] in repair.OWNER, c["id"]
    first = first_output_after_header(result)
    assert "VERIFIED" in first["data"]["text/plain"] and "#137333" in first["data"]["text/html"]
    assert record(run("repair", LOCAL))["changes"] == []


def through_the_domain() -> dict:
    """One request through the custom domain, as `runbook request local x` sends it."""
    return request.send(DOMAIN, "orders", "x")


def first_output_after_header(result) -> dict:
    nb = nbformat.read(result.run_dir / "50_verify.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    header = next(i for i, c in enumerate(code) if "ctx.header()" in c.source)
    return next(o for c in code[header + 1:] for o in c.outputs)


@pytest.mark.parametrize("fault", FAULTS, ids=str)
def test_fault_is_named_at_its_hop_and_repaired(applied, fault):
    chain = applied
    fault.inject(chain)
    answer = through_the_domain()
    assert (answer["status"], answer["hop"]) == fault.answer, answer
    assert answer["service_answered"] == (fault.answer[1] == "service")

    broken = run("verify", LOCAL)
    rec = record(broken)
    bad = failing(rec)
    assert broken.exit_code == 1 and rec["status"] == "failed"
    assert {c["hop"] for c in bad} == fault.failing_hops, bad
    assert all(c["detail"] and c["remedy"] for c in bad)
    first_hop = next(h for h in HOPS if h in fault.hops)
    verdict = first_output_after_header(broken)
    assert f"BROKEN at hop '{first_hop}'" in verdict["data"]["text/plain"]
    assert "#a50e0e" in verdict["data"]["text/html"]
    diagram_svg = json.dumps([o for c in nbformat.read(broken.run_dir / "50_verify.ipynb", as_version=4).cells
                              if c.cell_type == "code" and "pathview.live" in c.source for o in c.outputs])
    assert "first broken hop" in diagram_svg

    fixed = run("repair", LOCAL, yes=True)
    fixed_rec = record(fixed)
    rows = fixed_rec.get("plan", [])
    if fault.owned:
        assert fixed.exit_code == 0, (failing(fixed_rec), rows, fixed_rec.get("error"))
        assert fixed_rec["changes"], rows
        assert all(c["status"] != "fail" for c in fixed_rec["checks"])  # run.json: the state after the repair
        assert run("verify", LOCAL).exit_code == 0
        assert through_the_domain()["status"] == 200  # the service answers again
    else:
        assert fixed.exit_code == 1 and fixed_rec["changes"] == [], fixed_rec["changes"]
        explained = [r for r in rows if r["action"] == "none" and "not the runbook's" in r["why"]]
        assert explained and all(r["action"] == "none" for r in rows), rows
        fault.restore(chain)
        assert run("verify", LOCAL).exit_code == 0
        assert through_the_domain()["status"] == 200


def test_repair_without_yes_plans_and_changes_nothing(applied):
    chain = applied
    fail_vpc_link(chain)
    planned = run("repair", LOCAL)
    rec = record(planned)
    assert planned.exit_code == 1 and rec["changes"] == []
    actions = {(r["resource"].split(" (")[0], r["action"]) for r in rec["plan"]}
    assert (f"VPC link {BASE}-link", "delete") in actions and (f"VPC link {BASE}-link", "create") in actions
    assert ("stage prod variable vpcLinkId", "update") in actions
    assert chain.link["status"] == "FAILED"
    assert run("repair", LOCAL, yes=True).exit_code == 0
    assert chain.link["status"] == "AVAILABLE"
