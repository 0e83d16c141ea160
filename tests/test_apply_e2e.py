"""End to end on the sandbox: `runbook apply local`, then read the chain back from the emulator."""

from __future__ import annotations

import json

import pytest

from vpclink_runbooks.cli import main
from vpclink_runbooks.run.runner import run

from .conftest import ROOT, write_params

pytestmark = pytest.mark.notebooks

LOCAL = str(ROOT / "params" / "local.yaml")


def record(result) -> dict:
    return json.loads((result.run_dir / "run.json").read_text())


def chain(box, region="eu-west-2", env="local", service="orders", cluster="local-ecs", domain="api.example.com"):
    """Everything apply built, read straight from the emulator with plain boto3."""
    s = box.session(region)
    elbv2, gw, ecs, ec2 = s.client("elbv2"), s.client("apigateway"), s.client("ecs"), s.client("ec2")
    base = f"{env}-{service}"
    lb = elbv2.describe_load_balancers(Names=[f"{base}-nlb"])["LoadBalancers"][0]
    attrs = {a["Key"]: a["Value"] for a in elbv2.describe_load_balancer_attributes(
        LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]}
    listeners = elbv2.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    groups = [g for g in elbv2.describe_target_groups()["TargetGroups"] if g["TargetGroupName"].startswith(base + "-")]
    links = [v for v in gw.get_vpc_links()["items"] if v["name"] == f"{base}-link"]
    apis = [a for a in gw.get_rest_apis()["items"] if a["name"] == base]
    api = apis[0]
    proxy = next(r for r in gw.get_resources(restApiId=api["id"])["items"] if r.get("pathPart") == "{proxy+}")
    integration = gw.get_integration(restApiId=api["id"], resourceId=proxy["id"], httpMethod="ANY")
    svc = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
    td = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]
    rules = [r for r in ec2.describe_security_group_rules()["SecurityGroupRules"]
             if any(t["Key"] == "runbook:environment" and t["Value"] == env for t in r.get("Tags", []))]
    mappings = gw.get_base_path_mappings(domainName=domain)["items"]
    subnets = {sn["SubnetId"]: sn for sn in ec2.describe_subnets()["Subnets"]}
    return dict(lb=lb, attrs=attrs, listeners=listeners, groups=groups, links=links, apis=apis, api=api,
                integration=integration, service=svc, td=td, rules=rules, mappings=mappings, subnets=subnets,
                gw=gw, elbv2=elbv2)


@pytest.fixture(scope="module")
def applied(sandbox):
    before = sandbox.session().client("apigateway").get_base_path_mappings(domainName="api.example.com")["items"]
    result = run("apply", LOCAL)
    return result, before


def test_apply_creates_the_whole_chain_matching_params(sandbox, applied):
    result, mappings_before = applied
    rec = record(result)
    assert result.exit_code == 0, rec.get("error")
    assert rec["status"] == "succeeded"
    assert [s["notebook"] for s in rec["steps"]] == ["00_inspect.ipynb", "10_nlb.ipynb", "20_vpc_link.ipynb",
                                                      "30_ecs_service.ipynb", "40_api.ipynb", "50_verify.ipynb"]
    for key in ("run_id", "environment", "command", "started_at", "finished_at", "account", "caller_arn", "region",
                "params_sha256", "code_version", "changes", "checks"):
        assert key in rec
    assert {c["status"] for c in rec["checks"]} <= {"pass", "skip"}
    assert {c["hop"] for c in rec["checks"] if c["status"] == "pass"} >= {
        "mapping", "stage", "integration", "vpc_link", "nlb", "listener", "target_group", "targets",
        "task_definition", "security_group", "service"}
    ops = {(c["service"], c["operation"]) for c in rec["changes"]}
    assert ("elbv2", "CreateLoadBalancer") in ops and ("apigateway", "CreateBasePathMapping") in ops

    c = chain(sandbox)
    world = sandbox.world
    assert c["lb"]["Scheme"] == "internal" and c["lb"]["Type"] == "network"
    assert ":loadbalancer/net/" in c["lb"]["LoadBalancerArn"]
    assert sorted(az["SubnetId"] for az in c["lb"]["AvailabilityZones"]) == sorted(world["subnet_ids"])
    assert c["attrs"]["load_balancing.cross_zone.enabled"] == "true"
    (tg,) = c["groups"]
    assert (tg["Protocol"], tg["Port"], tg["TargetType"]) == ("TCP", 10000, "instance")
    (listener,) = c["listeners"]
    assert listener["Port"] == 10000 and listener["DefaultActions"][0]["TargetGroupArn"] == tg["TargetGroupArn"]
    (link,) = c["links"]
    assert link["status"] == "AVAILABLE" and link["targetArns"] == [c["lb"]["LoadBalancerArn"]]
    assert link["tags"]["runbook:managed-by"] == "vpclink-runbooks"
    container = c["td"]["containerDefinitions"][0]
    assert c["td"]["networkMode"] == "bridge"
    assert container["portMappings"][0]["hostPort"] == 10000 and container["portMappings"][0]["containerPort"] == 8080
    assert container["secrets"] == [{"name": "CONNECTION_STRING",
                                     "valueFrom": "arn:aws:ssm:eu-west-2:123456789012:parameter/orders/db"}]
    assert {"name": "LOG_LEVEL", "value": "info"} in container["environment"]
    # one rule, from the NLB's own group (nlb.security_group, the default), not from its subnets' CIDRs
    assert [(r.get("ReferencedGroupInfo") or {}).get("GroupId") for r in c["rules"]] == c["lb"]["SecurityGroups"]
    assert all((r["FromPort"], r["ToPort"], r["IsEgress"]) == (10000, 10000, False) for r in c["rules"])
    assert all(r.get("CidrIpv4") is None for r in c["rules"])
    svc = c["service"]
    assert svc["runningCount"] == svc["desiredCount"] == 2
    assert svc["loadBalancers"][0]["targetGroupArn"] == tg["TargetGroupArn"]
    assert svc["loadBalancers"][0]["containerPort"] == 8080
    health = c["elbv2"].describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
    assert sorted(d["Target"]["Id"] for d in health) == sorted(world["instance_ids"])
    assert {d["Target"]["Port"] for d in health} == {10000}
    integ = c["integration"]
    assert integ["type"] == "HTTP_PROXY" and integ["connectionType"] == "VPC_LINK"
    assert integ["connectionId"] == "${stageVariables.vpcLinkId}"
    assert integ["uri"] == f"http://{c['lb']['DNSName']}:10000/{{proxy}}"
    stage = c["gw"].get_stage(restApiId=c["api"]["id"], stageName="prod")
    assert stage["variables"]["vpcLinkId"] == link["id"]
    ours = [m for m in c["mappings"] if m["basePath"] == "orders"]
    assert ours == [{"basePath": "orders", "restApiId": c["api"]["id"], "stage": "prod"}]
    others_before = [m for m in mappings_before if m["basePath"] != "orders"]
    assert others_before and [m for m in c["mappings"] if m["basePath"] != "orders"] == others_before


def test_second_apply_changes_nothing_and_plan_is_all_none(sandbox, applied):
    before = chain(sandbox)
    again = run("apply", LOCAL)
    rec = record(again)
    assert again.exit_code == 0 and rec["changes"] == []
    after = chain(sandbox)
    assert after["lb"]["LoadBalancerArn"] == before["lb"]["LoadBalancerArn"]
    assert after["links"][0]["id"] == before["links"][0]["id"] and after["api"]["id"] == before["api"]["id"]
    assert after["td"]["revision"] == before["td"]["revision"]
    planned = run("plan", LOCAL)
    rows = record(planned)["plan"]
    assert planned.exit_code == 0 and rows
    assert {r["action"] for r in rows} == {"none"}, [r for r in rows if r["action"] != "none"]


def test_host_port_change_updates_the_chain_coherently(sandbox, applied, tmp_path):
    moved = write_params(tmp_path, service__host_port=10002)
    result = run("apply", str(moved))
    rec = record(result)
    assert result.exit_code == 0, rec.get("error")
    c = chain(sandbox)
    (tg,) = c["groups"]
    assert tg["TargetGroupName"] == "local-orders-10002" and tg["Port"] == 10002
    assert [lst["Port"] for lst in c["listeners"]] == [10002]
    assert c["td"]["containerDefinitions"][0]["portMappings"][0]["hostPort"] == 10002
    assert {r["FromPort"] for r in c["rules"]} == {10002}
    assert c["integration"]["uri"].endswith(":10002/{proxy}")
    assert all(ch["status"] != "fail" for ch in rec["checks"])
    assert main(["verify", str(moved)]) == 0
    # and back, so later tests see the default chain
    assert run("apply", LOCAL).exit_code == 0


@pytest.mark.parametrize("changes, expected", [
    ({"service__desired_count": 3}, "desired count larger than instances"),
    ({"service__deployment": {"minimum_healthy_percent": 100, "maximum_percent": 100}},
     "deployment cannot roll with a fixed port"),
    ({"nlb__subnets": ["subnet-0123456789abcdef0"]}, "subnet outside the VPC"),
])
def test_settings_that_would_stall_are_refused_at_plan_time(sandbox, applied, tmp_path, changes, expected):
    path = write_params(tmp_path, **changes)
    result = run("plan", str(path))
    rec = record(result)
    assert result.exit_code == 2 and rec["status"] == "refused"
    assert rec["changes"] == []
    nb = (result.run_dir / "00_inspect.ipynb").read_text()
    assert expected in nb


def test_apply_overlaps_the_steps_with_aws_waits(applied):
    """20_vpc_link and 30_ecs_service start once 10_nlb created the NLB (while it provisions), 40_api once
    20_vpc_link created the link (while it is PENDING); the link itself is created only on an active NLB (the
    sandbox FAILs one created earlier, as AWS does); verify after everything."""
    rec = record(applied[0])
    steps = {s["notebook"].removesuffix(".ipynb"): s for s in rec["steps"]}
    end = {nb: s["started_after"] + s["seconds"] for nb, s in steps.items()}
    nlb, link, service, api = steps["10_nlb"], steps["20_vpc_link"], steps["30_ecs_service"], steps["40_api"]
    assert nlb["converged_after"] <= service["started_after"] < end["10_nlb"], steps
    assert nlb["converged_after"] <= link["started_after"] < end["10_nlb"], steps
    assert link["converged_after"] <= api["started_after"] < end["20_vpc_link"], steps
    assert steps["50_verify"]["started_after"] >= max(end[nb] for nb in end if nb != "50_verify") - 0.05, steps
    assert {c["id"]: c["status"] for c in rec["checks"]}["vpc_link.status"] == "pass"
