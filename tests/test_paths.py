"""The three paths on the sandbox: V1+NLB+bridge fixed port (covered by test_apply_e2e), V2+ALB+bridge with
dynamic host ports, V2+NLB+awsvpc IP targets (EC2 and Fargate): apply, verify, a second apply changes
nothing, verify names the broken V2 hop, destroy leaves nothing tagged."""

from __future__ import annotations

import ipaddress
import json

import pytest

from vpclink_runbooks.run.runner import run
from vpclink_runbooks.sandbox.behaviours import set_vpc_link_v2_status

from .conftest import write_params

pytestmark = pytest.mark.notebooks

MANAGED = ("runbook:managed-by", "vpclink-runbooks")


def record(result) -> dict:
    return json.loads((result.run_dir / "run.json").read_text())


def _ours(tags) -> bool:
    if isinstance(tags, list):
        tags = {t.get("Key", t.get("key")): t.get("Value", t.get("value")) for t in tags}
    return (tags or {}).get(MANAGED[0]) == MANAGED[1]


def tagged(box, env: str) -> dict[str, list[str]]:
    """Everything in the emulator tagged by the runbook for `env`, by kind (V2 links and security groups too)."""
    s = box.session()
    elbv2, gw, gw2, ecs, ec2 = (s.client(n) for n in ("elbv2", "apigateway", "apigatewayv2", "ecs", "ec2"))

    def mine(tags) -> bool:
        if isinstance(tags, list):
            tags = {t.get("Key", t.get("key")): t.get("Value", t.get("value")) for t in tags}
        return _ours(tags) and (tags or {}).get("runbook:environment") == env

    def elb(arns: list[str]) -> list[str]:
        if not arns:
            return []
        return sorted(d["ResourceArn"] for d in elbv2.describe_tags(ResourceArns=arns)["TagDescriptions"]
                      if mine(d["Tags"]))

    services = ecs.list_services(cluster="local-ecs")["serviceArns"]
    described = ecs.describe_services(cluster="local-ecs", services=services, include=["TAGS"])["services"] \
        if services else []
    return {
        "load_balancers": elb([lb["LoadBalancerArn"] for lb in elbv2.describe_load_balancers()["LoadBalancers"]]),
        "target_groups": elb([tg["TargetGroupArn"] for tg in elbv2.describe_target_groups()["TargetGroups"]]),
        "vpc_links": sorted(v["id"] for v in gw.get_vpc_links()["items"] if mine(v.get("tags"))),
        "vpc_links_v2": sorted(v["VpcLinkId"] for v in gw2.get_vpc_links()["Items"] if mine(v.get("Tags"))),
        "rest_apis": sorted(a["id"] for a in gw.get_rest_apis()["items"] if mine(a.get("tags"))),
        "ecs_services": sorted(sv["serviceName"] for sv in described
                               if sv["status"] == "ACTIVE" and mine(sv.get("tags"))),
        "task_definitions": ecs.list_task_definitions(familyPrefix=f"{env}-", status="ACTIVE")["taskDefinitionArns"],
        "security_groups": sorted(g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]
                                  if mine(g.get("Tags"))),
        "security_group_rules": sorted(r["SecurityGroupRuleId"] for r in ec2.describe_security_group_rules()[
            "SecurityGroupRules"] if mine(r.get("Tags"))),
    }


def _apply_verify_idempotent(path):
    planned = run("plan", str(path))  # on nothing yet: every step plans with placeholders, changes nothing
    assert planned.exit_code == 0, record(planned).get("error")
    assert record(planned)["changes"] == []
    applied = run("apply", str(path))
    rec = record(applied)
    assert applied.exit_code == 0, (rec.get("error"), [c for c in rec["checks"] if c["status"] == "fail"])
    assert not [c for c in rec["checks"] if c["status"] == "fail"]
    verified = run("verify", str(path))
    assert verified.exit_code == 0, [c for c in record(verified)["checks"] if c["status"] == "fail"]
    again = run("apply", str(path))
    assert again.exit_code == 0 and record(again)["changes"] == [], record(again)["changes"]
    return rec, record(verified)


def _check(rec: dict, check_id: str) -> dict:
    return next(c for c in rec["checks"] if c["id"] == check_id)


def _destroy_cleans(sandbox, path, env):
    destroyed = run("destroy", str(path), yes=True)
    assert destroyed.exit_code == 0, record(destroyed).get("error")
    left = {kind: ids for kind, ids in tagged(sandbox, env).items() if ids}
    assert left == {}, left


# ---- V2 + ALB + bridge with dynamic host ports -------------------------------------------------------------

@pytest.fixture(scope="module")
def alb_params(tmp_path_factory):
    return write_params(tmp_path_factory.mktemp("alb"), environment="albenv", service__name="shop",
                        service__host_port=None, service__health_check_path="/health", service__desired_count=3,
                        nlb={"type": "application", "subnets": None, "listener_port": 8000},
                        vpc_link={"version": 2}, api__base_path="shop")


def test_v2_alb_dynamic_ports_apply_verify_destroy(sandbox, alb_params):
    rec, verified = _apply_verify_idempotent(alb_params)
    s = sandbox.session()
    elbv2, ec2, ecs = s.client("elbv2"), s.client("ec2"), s.client("ecs")
    lb = elbv2.describe_load_balancers(Names=["albenv-shop-alb"])["LoadBalancers"][0]
    assert (lb["Type"], lb["Scheme"]) == ("application", "internal")
    listener = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"][0]
    assert (listener["Protocol"], listener["Port"]) == ("HTTP", 8000)
    tg = elbv2.describe_target_groups(Names=["albenv-shop-dyn8080"])["TargetGroups"][0]
    assert (tg["Protocol"], tg["TargetType"]) == ("HTTP", "instance")
    health = elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
    ports = sorted(d["Target"]["Port"] for d in health)
    # three tasks on two instances: only possible with dynamic host ports, all from the ephemeral range
    assert len(ports) == 3 and all(32768 <= p <= 65535 for p in ports)
    assert all(d["TargetHealth"]["State"] == "healthy" for d in health)
    td = ecs.describe_task_definition(taskDefinition="albenv-shop")["taskDefinition"]
    assert td["networkMode"] == "bridge"
    assert td["containerDefinitions"][0]["portMappings"][0]["hostPort"] == 0

    groups = {g["GroupName"]: g for g in ec2.describe_security_groups()["SecurityGroups"]}
    link_sg, alb_sg = groups["albenv-shop-vpclink"]["GroupId"], groups["albenv-shop-alb"]["GroupId"]
    assert lb["SecurityGroups"] == [alb_sg]
    rules = [r for r in ec2.describe_security_group_rules()["SecurityGroupRules"]
             if any(t["Key"] == "runbook:environment" and t["Value"] == "albenv" for t in r.get("Tags", []))]
    # the ALB admits the listener port from the link's group only; instances the ephemeral range from the ALB's
    assert {(r["GroupId"], r["FromPort"], r["ToPort"], r.get("ReferencedGroupInfo", {}).get("GroupId"),
             r.get("CidrIpv4")) for r in rules} >= {(alb_sg, 8000, 8000, link_sg, None)}
    instance_rules = [r for r in rules if r["GroupId"] not in (alb_sg, link_sg)]
    assert instance_rules and all((r["FromPort"], r["ToPort"]) == (32768, 65535) and not r.get("CidrIpv4")
                                  and r["ReferencedGroupInfo"]["GroupId"] == alb_sg for r in instance_rules)

    link = s.client("apigatewayv2").get_vpc_links()["Items"]
    link = next(v for v in link if v["Name"] == "albenv-shop-link")
    assert link["VpcLinkStatus"] == "AVAILABLE" and link["SecurityGroupIds"] == [link_sg]
    gw = s.client("apigateway")
    api = next(a for a in gw.get_rest_apis()["items"] if a["name"] == "albenv-shop")
    proxy = next(r for r in gw.get_resources(restApiId=api["id"])["items"] if r.get("pathPart") == "{proxy+}")
    integ = gw.get_integration(restApiId=api["id"], resourceId=proxy["id"], httpMethod="ANY")
    assert integ["connectionId"] == link["VpcLinkId"]
    assert integ["integrationTarget"] == lb["LoadBalancerArn"]
    assert _check(verified, "integration.integration_target")["status"] == "pass"
    assert _check(verified, "security_group.alb_to_instances")["status"] == "pass"

    # the ALB's rule from the link's group revoked by hand: reported at the load balancer hop, repaired
    alb_rule = next(r for r in rules if r["GroupId"] == alb_sg)
    ec2.revoke_security_group_ingress(GroupId=alb_sg, SecurityGroupRuleIds=[alb_rule["SecurityGroupRuleId"]])
    broken = run("verify", str(alb_params))
    assert broken.exit_code == 1
    result = _check(record(broken), "nlb.alb_security_group")
    assert result["status"] == "fail" and result["hop"] == "nlb" and link_sg in result["detail"]
    # a listener forwarding nowhere we expect is reported at the listener hop
    elbv2.delete_listener(ListenerArn=listener["ListenerArn"])
    broken = record(run("verify", str(alb_params)))
    assert _check(broken, "listener.8000")["status"] == "fail"
    repaired = run("repair", str(alb_params), yes=True)
    assert repaired.exit_code == 0, [c for c in record(repaired)["checks"] if c["status"] == "fail"]

    _destroy_cleans(sandbox, alb_params, "albenv")


# ---- V2 + NLB + awsvpc (IP targets) -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def awsvpc_params(tmp_path_factory):
    return write_params(tmp_path_factory.mktemp("ip"), environment="ipenv", service__name="ledger",
                        service__host_port=None, service__network_mode="awsvpc", service__desired_count=3,
                        vpc_link={"version": 2}, api__base_path="ledger")


def test_v2_nlb_awsvpc_apply_verify_findings_destroy(sandbox, awsvpc_params):
    _apply_verify_idempotent(awsvpc_params)
    s = sandbox.session()
    elbv2, ec2, ecs = s.client("elbv2"), s.client("ec2"), s.client("ecs")
    tg = elbv2.describe_target_groups(Names=["ipenv-ledger-ip8080"])["TargetGroups"][0]
    assert (tg["Protocol"], tg["TargetType"], tg["Port"]) == ("TCP", "ip", 8080)
    health = elbv2.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
    lb = elbv2.describe_load_balancers(Names=["ipenv-ledger-nlb"])["LoadBalancers"][0]
    lb_subnets = {az["SubnetId"] for az in lb["AvailabilityZones"]}
    cidrs = {sn["SubnetId"]: sn["CidrBlock"] for sn in ec2.describe_subnets()["Subnets"]}
    assert len(health) == 3 and all(d["TargetHealth"]["State"] == "healthy" for d in health)
    for d in health:  # each target is a task's own address, in one of the NLB's subnets, on the container port
        assert d["Target"]["Port"] == 8080
        assert any(ipaddress.ip_address(d["Target"]["Id"]) in ipaddress.ip_network(cidrs[sn]) for sn in lb_subnets)
    svc = ecs.describe_services(cluster="local-ecs", services=["ledger"])["services"][0]
    task_sg = next(g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]
                   if g["GroupName"] == "ipenv-ledger-tasks")
    assert svc["networkConfiguration"]["awsvpcConfiguration"]["securityGroups"] == [task_sg]
    rules = [r for r in ec2.describe_security_group_rules()["SecurityGroupRules"] if r["GroupId"] == task_sg
             and not r["IsEgress"]]
    assert [(r.get("ReferencedGroupInfo") or {}).get("GroupId") for r in rules] == lb["SecurityGroups"]
    assert {(r["FromPort"], r["ToPort"]) for r in rules} == {(8080, 8080)}

    planned = run("plan", str(awsvpc_params))
    rows = [json.loads(line) for line in (planned.run_dir / "plan.jsonl").read_text().splitlines()]
    constraint = [r for r in rows if r["resource"] == "fixed host port constraint"]
    assert constraint and constraint[0]["desired"] == "does not apply"
    assert "own network interface" in constraint[0]["why"]
    assert not [r for r in rows if r["action"] != "none"]

    # verify names the V2 hop: a FAILED link is reported at the vpc_link hop
    link = next(v for v in s.client("apigatewayv2").get_vpc_links()["Items"] if v["Name"] == "ipenv-ledger-link")
    set_vpc_link_v2_status(sandbox.account_id, sandbox.region, link["VpcLinkId"], "FAILED")
    broken = run("verify", str(awsvpc_params))
    brec = record(broken)
    assert broken.exit_code == 1
    failing = [c for c in brec["checks"] if c["status"] == "fail"]
    assert failing[0]["hop"] == "vpc_link" and "FAILED" in failing[0]["detail"], failing
    # repair recreates the link; verify passes again
    repaired = run("repair", str(awsvpc_params), yes=True)
    assert repaired.exit_code == 0, [c for c in record(repaired)["checks"] if c["status"] == "fail"]

    # a task security group rule revoked by hand is reported at the security_group hop
    rule = next(r for r in ec2.describe_security_group_rules()["SecurityGroupRules"] if r["GroupId"] == task_sg
                and not r["IsEgress"])
    ec2.revoke_security_group_ingress(GroupId=task_sg, SecurityGroupRuleIds=[rule["SecurityGroupRuleId"]])
    broken = record(run("verify", str(awsvpc_params)))
    assert _check(broken, "security_group.task_group")["status"] == "fail"
    assert run("repair", str(awsvpc_params), yes=True).exit_code == 0

    _destroy_cleans(sandbox, awsvpc_params, "ipenv")


def test_fargate_behind_alb_and_missing_integration_target(sandbox, tmp_path):
    """awsvpc on Fargate behind an ALB: the task group admits the container port from the ALB's group only;
    an integration that lost its integrationTarget is reported at the integration hop."""
    path = write_params(tmp_path, environment="tgtenv", service__name="cart", service__host_port=None,
                        service__network_mode="awsvpc", service__launch_type="FARGATE", service__cpu=256,
                        service__memory=512, service__desired_count=2, service__health_check_path="/health",
                        vpc_link={"version": 2}, nlb={"type": "application", "subnets": None, "listener_port": 80},
                        api__base_path="cart")
    applied = run("apply", str(path))
    assert applied.exit_code == 0, [c for c in record(applied)["checks"] if c["status"] == "fail"]
    s = sandbox.session()
    ec2 = s.client("ec2")
    groups = {g["GroupName"]: g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]}
    task_rules = [r for r in ec2.describe_security_group_rules()["SecurityGroupRules"]
                  if r["GroupId"] == groups["tgtenv-cart-tasks"] and not r["IsEgress"]]
    assert [(r["FromPort"], r["ToPort"], r.get("ReferencedGroupInfo", {}).get("GroupId"), r.get("CidrIpv4"))
            for r in task_rules] == [(8080, 8080, groups["tgtenv-cart-alb"], None)]
    tg = s.client("elbv2").describe_target_groups(Names=["tgtenv-cart-ip8080"])["TargetGroups"][0]
    assert (tg["Protocol"], tg["TargetType"]) == ("HTTP", "ip")
    tasks = s.client("ecs").describe_tasks(cluster="local-ecs", tasks=s.client("ecs").list_tasks(
        cluster="local-ecs", serviceName="cart")["taskArns"])["tasks"]
    assert len(tasks) == 2 and all(t["launchType"] == "FARGATE" and not t.get("containerInstanceArn")
                                   for t in tasks)
    gw = s.client("apigateway")
    api = next(a for a in gw.get_rest_apis()["items"] if a["name"] == "tgtenv-cart")
    proxy = next(r for r in gw.get_resources(restApiId=api["id"])["items"] if r.get("pathPart") == "{proxy+}")
    gw.update_integration(restApiId=api["id"], resourceId=proxy["id"], httpMethod="ANY",
                          patchOperations=[{"op": "remove", "path": "/integrationTarget"}])
    broken = record(run("verify", str(path)))
    result = _check(broken, "integration.integration_target")
    assert result["status"] == "fail" and result["hop"] == "integration"
    _destroy_cleans(sandbox, path, "tgtenv")


def test_inspect_recommends_a_path_with_reasons(sandbox, tmp_path):
    from vpclink_runbooks.context import begin
    from vpclink_runbooks.steps import inspect as inspect_vpc

    def recommend(**changes):
        path = write_params(tmp_path, sandbox=False, **changes)
        ctx = begin("00_inspect", {"params_file": str(path), "mode": "plan"})
        table = inspect_vpc.recommend_path(ctx, inspect_vpc.discover(ctx))
        paths = table["path"].str.replace("RECOMMENDED: ", "")
        return table.iloc[0]["path"], dict(zip(paths, table["reasons"], strict=True))

    # one task on two instances with the port free and a TCP check: the default fits
    best, reasons = recommend(service__desired_count=1)
    assert best == "RECOMMENDED: " + inspect_vpc.PATHS["v1-nlb-fixed"], reasons
    # as many tasks as instances, with an HTTP health check: a fixed port leaves no spare instance -> ALB
    best, reasons = recommend(service__desired_count=2, service__health_check_path="/health")
    assert best == "RECOMMENDED: " + inspect_vpc.PATHS["v2-alb-dynamic"], reasons
    assert "no spare instance" in reasons[inspect_vpc.PATHS["v1-nlb-fixed"]]
    # the cluster can run Fargate: awsvpc needs no instance at all
    ecs = sandbox.session().client("ecs")
    ecs.put_cluster_capacity_providers(cluster="local-ecs", capacityProviders=["FARGATE"],
                                       defaultCapacityProviderStrategy=[])
    try:
        best, reasons = recommend(service__desired_count=2, service__health_check_path="/health")
    finally:
        ecs.put_cluster_capacity_providers(cluster="local-ecs", capacityProviders=[],
                                           defaultCapacityProviderStrategy=[])
    assert best == "RECOMMENDED: " + inspect_vpc.PATHS["v2-nlb-awsvpc"], reasons
    assert "FARGATE capacity provider" in reasons[inspect_vpc.PATHS["v2-nlb-awsvpc"]]


def test_v1_to_v2_link_on_the_same_nlb_fixed_port(sandbox, tmp_path):
    """An environment on the default path moves to a V2 link: the V1 link goes, the V2 link and its group come,
    the integration names the NLB as integrationTarget, and the fixed-port service stays as it was."""
    v1 = write_params(tmp_path, environment="migenv", service__name="pay", api__base_path="pay")
    applied = run("apply", str(v1))
    assert applied.exit_code == 0, record(applied).get("error")
    s = sandbox.session()
    gw, gw2, elbv2 = s.client("apigateway"), s.client("apigatewayv2"), s.client("elbv2")
    assert [v["name"] for v in gw.get_vpc_links()["items"] if v["name"] == "migenv-pay-link"]
    td_before = s.client("ecs").describe_services(cluster="local-ecs", services=["pay"])["services"][0][
        "taskDefinition"]

    v2 = write_params(tmp_path, environment="migenv", service__name="pay", api__base_path="pay",
                      vpc_link={"version": 2})
    moved = run("apply", str(v2))
    rec = record(moved)
    assert moved.exit_code == 0, (rec.get("error"), [c for c in rec["checks"] if c["status"] == "fail"])
    assert not [v for v in gw.get_vpc_links()["items"] if v["name"] == "migenv-pay-link"]
    link = next(v for v in gw2.get_vpc_links()["Items"] if v["Name"] == "migenv-pay-link")
    nlb = elbv2.describe_load_balancers(Names=["migenv-pay-nlb"])["LoadBalancers"][0]
    api = next(a for a in gw.get_rest_apis()["items"] if a["name"] == "migenv-pay")
    proxy = next(r for r in gw.get_resources(restApiId=api["id"])["items"] if r.get("pathPart") == "{proxy+}")
    integ = gw.get_integration(restApiId=api["id"], resourceId=proxy["id"], httpMethod="ANY")
    assert (integ["connectionId"], integ["integrationTarget"]) == (link["VpcLinkId"], nlb["LoadBalancerArn"])
    svc = s.client("ecs").describe_services(cluster="local-ecs", services=["pay"])["services"][0]
    assert svc["taskDefinition"] == td_before  # same fixed-port service: nothing to redeploy
    assert _check(rec, "vpc_link.status")["detail"].startswith(f"V2 {link['VpcLinkId']} AVAILABLE")
    again = run("apply", str(v2))
    assert again.exit_code == 0 and record(again)["changes"] == [], record(again)["changes"]
    _destroy_cleans(sandbox, v2, "migenv")
