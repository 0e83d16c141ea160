"""Plan is read-only by construction and never waits: its session refuses mutating calls before they are sent,
its waits return at once without a poll, and its rows reach run.json through plan.record(), not rendering."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import yaml

from vpclink_runbooks import plan as plan_mod
from vpclink_runbooks.aws import session as aws_mod
from vpclink_runbooks.aws import waits
from vpclink_runbooks.context import begin
from vpclink_runbooks.run.runner import run
from vpclink_runbooks.sandbox.world import WorldSpec, seed_world

from .conftest import ROOT

pytestmark = pytest.mark.notebooks

# A world no other test builds: another region, three AZs, other names and ports.
SPEC = WorldSpec(region="us-west-2", vpc_id="vpc-0c0ffee0d15ea5e17", vpc_cidr="10.77.0.0/16",
                 cluster="warehouse-ecs", az_count=3, instances_per_az=1,
                 cluster_security_group_name="warehouse-nodes", domain_name="edge.warehouse.example.net",
                 other_api_name="catalog", other_base_path="catalog", other_stage="live",
                 ssm_parameters={"/stock/db": "postgres://stock"}, ecr_images=["stock:3.1.0"])


@pytest.fixture(scope="module")
def world(sandbox):
    return seed_world(sandbox.session(SPEC.region), SPEC)


@pytest.fixture
def params_path(world, tmp_path):
    params = yaml.safe_load((ROOT / "params" / "local.yaml").read_text())
    params.update(environment="staging", sandbox=False, region=SPEC.region, vpc_id=SPEC.vpc_id,
                  cluster=SPEC.cluster, api={"domain_name": SPEC.domain_name, "base_path": "stock", "stage": "beta"})
    params["service"].update(name="stock", image="123456789012.dkr.ecr.us-west-2.amazonaws.com/stock:3.1.0",
                             container_port=7000, host_port=17070, desired_count=3, health_check_path="/ready",
                             secrets={"DB": "arn:aws:ssm:us-west-2:123456789012:parameter/stock/db"},
                             extra_ports=[{"container_port": 7100, "host_port": 17171, "expose": True}])
    params["nlb"] = {"subnets": None, "listener_port": 8443}
    path = tmp_path / "staging.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def calls(result) -> list[dict]:
    return [json.loads(line) for line in (result.run_dir / "calls.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.notebooks
def test_plan_after_a_partial_apply_changes_nothing_and_never_polls(sandbox, params_path):
    # Only 10_nlb applied: the NLB and its target groups exist, no service yet (30_ecs_service's wait for the
    # targets' health would poll DescribeTargetHealth until it timed out).
    partial = run("apply", str(params_path), notebooks=[("10_nlb", "apply")])
    assert partial.exit_code == 0, partial.record.get("error")
    elbv2 = sandbox.session(SPEC.region).client("elbv2")
    groups = [g["TargetGroupName"] for g in elbv2.describe_target_groups()["TargetGroups"]
              if g["TargetGroupName"].startswith("staging-stock-")]
    assert sorted(groups) == ["staging-stock-17070", "staging-stock-17171"]
    # apply's wait polled, and calls.jsonl says which calls were its polls
    assert {c.get("wait") for c in calls(partial)} >= {"load_balancer_available"}

    planned = run("plan", str(params_path))
    record = json.loads((planned.run_dir / "run.json").read_text())
    assert planned.exit_code == 0, record.get("error")
    assert [s["notebook"] for s in record["steps"]] == [f"{nb}.ipynb" for nb in (
        "00_inspect", "10_nlb", "20_vpc_link", "30_ecs_service", "40_api")]
    made = calls(planned)
    operations = Counter(c["operation"] for c in made)
    assert [c for c in made if c["mutating"]] == [], "plan sent a mutating call"
    assert [c for c in made if "wait" in c] == [], "plan polled a waiter"
    # No waiter ran: the polls of 30_ecs_service's wait for healthy targets and of a VPC link's wait are absent.
    assert operations["DescribeTargetHealth"] == 0 and operations["GetVpcLink"] == 0, operations
    assert record["api_calls"]["mutating"] == 0
    # the plan's rows reached run.json by plan.record(): what apply would create next, from 20_vpc_link on
    created = {row["resource"].split(" (")[0] for row in record["plan"] if row["action"] == "create"}
    assert "ECS service stock" in created and not any("NLB" in r for r in created), created
    # the executed 30_ecs_service says what its wait would have waited for
    shown = (planned.run_dir / "30_ecs_service.ipynb").read_text()
    assert "not waited" in shown and "target_in_service" in shown
    # the steps' results say so, not that a wait took 0.0s
    nlb = (planned.run_dir / "10_nlb.ipynb").read_text()
    assert "after 0.0s" not in shown and "not waited" in nlb and "after 0.0s" not in nlb


def test_a_plan_mode_session_refuses_a_mutating_call_before_it_is_sent(sandbox, world, params_path):
    ctx = begin("10_nlb", {"params_file": str(params_path), "mode": "plan"})
    assert ctx.aws.read_only == "10_nlb in plan mode is read-only"
    with pytest.raises(aws_mod.MutationRefused, match="elbv2.CreateTargetGroup"):
        ctx.aws.elbv2.create_target_group(Name="staging-stock-19999", Protocol="TCP", Port=19999,
                                          VpcId=SPEC.vpc_id, TargetType="instance")
    assert not [c for c in ctx.aws.recorder.calls if c["operation"] == "CreateTargetGroup"]
    seen = sandbox.session(SPEC.region).client("elbv2").describe_target_groups()["TargetGroups"]
    assert "staging-stock-19999" not in {g["TargetGroupName"] for g in seen}, "the server saw the call"
    # reads still go through
    assert "TargetGroups" in ctx.aws.elbv2.describe_target_groups()


def test_a_plan_mode_wait_returns_at_once_without_a_poll(world, params_path):
    ctx = begin("30_ecs_service", {"params_file": str(params_path), "mode": "plan"})
    before = len(ctx.aws.recorder.calls)
    seconds = waits.wait(ctx.aws.elbv2, "target_in_service", "targets of staging-stock-17070 healthy",
                         TargetGroupArn="arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/x/1")
    assert seconds == 0.0
    assert ctx.aws.recorder.calls[before:] == []
    assert "not waited" in waits.would_wait(ctx.aws.elbv2, "target_in_service", "targets healthy")
    applying = begin("30_ecs_service", {"params_file": str(params_path), "mode": "apply"})
    assert applying.aws.read_only is None
    assert waits.would_wait(applying.aws.elbv2, "target_in_service", "targets healthy") is None


def test_rendering_a_plan_records_nothing_record_does(tmp_path, monkeypatch):
    monkeypatch.setenv(aws_mod.RUN_DIR_ENV, str(tmp_path))
    plan = plan_mod.Plan(apply=False)
    plan.add("NLB staging-stock-nlb", "create", None, "internal", "no NLB of ours")
    assert list(plan.frame()["action"]) == ["create"]
    assert not (tmp_path / "plan.jsonl").exists(), "frame() wrote the run's plan"
    assert plan.record() is plan
    rows = [json.loads(line) for line in (tmp_path / "plan.jsonl").read_text().splitlines()]
    assert rows == [{"resource": "NLB staging-stock-nlb", "action": "create", "current": "-",
                     "desired": "internal", "why": "no NLB of ours"}]
