"""Destroy on the sandbox: apply, then `runbook destroy`: plan by default, everything tagged gone with --yes,
the pre-existing world untouched, a second destroy a no-op, and destroy after a partial apply."""

from __future__ import annotations

import pytest

from vpclink_runbooks.cli import main
from vpclink_runbooks.run.runner import run

from .conftest import write_params
from .lifecycle import LOCAL, counts, owned, record, world

pytestmark = pytest.mark.notebooks

NOTHING = {"load_balancers": 0, "target_groups": 0, "vpc_links": 0, "rest_apis": 0, "ecs_services": 0,
           "task_definitions": 0, "security_group_rules": 0, "lock": 0}


@pytest.fixture(scope="module")
def applied(sandbox):
    before = world(sandbox)
    result = run("apply", LOCAL)
    assert result.exit_code == 0, record(result).get("error")
    return before


def test_destroy_without_yes_only_plans(sandbox, applied):
    before = owned(sandbox)
    result = run("destroy", LOCAL)
    rec = record(result)
    assert result.exit_code == 0, rec.get("error")
    assert [s["notebook"] for s in rec["steps"]] == ["90_destroy.ipynb"]
    assert rec["changes"] == [] and "lock" not in rec
    assert owned(sandbox) == before
    deletes = {r["resource"].split(" (")[0] for r in rec["plan"] if r["action"] == "delete"}
    assert {"base path mapping api.example.com/orders", "REST API local-orders", "ECS service orders",
            "VPC link local-orders-link", "target group local-orders-10000", "NLB local-orders-nlb",
            "listener TCP :10000"} <= deletes
    assert any(r["resource"] == "ECS service orders" and r["action"] == "update" for r in rec["plan"])


def test_destroy_yes_removes_everything_tagged_and_nothing_else(sandbox, applied):
    assert counts(sandbox) == {**NOTHING, "load_balancers": 1, "target_groups": 1, "vpc_links": 1, "rest_apis": 1,
                               "ecs_services": 1, "task_definitions": 1, "security_group_rules": 1}
    result = run("destroy", LOCAL, yes=True)
    rec = record(result)
    assert result.exit_code == 0 and rec["status"] == "succeeded", rec.get("error")
    assert counts(sandbox) == NOTHING, owned(sandbox)
    assert world(sandbox) == applied  # same VPC, subnets, instances, groups, domain, other API and its mapping
    operations = [c["operation"] for c in rec["changes"]]
    # the safe order: front door first, then the NLB, then its own security group; the VPC link before the NLB
    assert operations[0] == "DeleteBasePathMapping" and operations[-2:] == ["DeleteLoadBalancer", "DeleteSecurityGroup"]
    assert operations.index("UpdateService") < operations.index("DeleteService")
    assert operations.index("DeleteVpcLink") < operations.index("DeleteLoadBalancer")
    assert rec["lock"]["parameter"] == "/vpclink-runbooks/local/lock" and rec["lock"]["took_over"] is None


def test_second_destroy_changes_nothing(sandbox, applied):
    result = run("destroy", LOCAL, yes=True)
    rec = record(result)
    assert result.exit_code == 0, rec.get("error")
    assert rec["changes"] == []
    assert {r["action"] for r in rec["plan"]} == {"none"}
    assert main(["destroy", LOCAL]) == 0
    assert world(sandbox) == applied


def test_destroy_after_a_partial_apply(sandbox, applied):
    """Apply stopped after the ECS step (no REST API yet): destroy removes what is there, skips the rest."""
    partial = run("apply", LOCAL, notebooks=[(nb, "apply") for nb in ("00_inspect", "10_nlb", "20_vpc_link",
                                                                           "30_ecs_service")])
    assert partial.exit_code == 0, record(partial).get("error")
    made = counts(sandbox)
    assert made["rest_apis"] == 0 and made["ecs_services"] == 1 and made["task_definitions"] == 1
    result = run("destroy", LOCAL, yes=True)
    rec = record(result)
    assert result.exit_code == 0, rec.get("error")
    assert counts(sandbox) == NOTHING, owned(sandbox)
    assert world(sandbox) == applied
    skipped = {r["resource"] for r in rec["plan"] if r["action"] == "none"}
    assert "REST API local-orders" in skipped


def test_protected_destroy_needs_confirm(sandbox, applied, tmp_path, capsys):
    path = write_params(tmp_path, protected=True)
    assert main(["destroy", str(path), "--yes"]) == 2
    assert "--confirm local@123456789012" in capsys.readouterr().err


def test_a_paced_rest_api_deletion_does_not_hold_up_the_teardown(sandbox, applied, tmp_path, monkeypatch):
    """API Gateway allows one DeleteRestApi per 30 s: when the slot is taken (another destroy of the batch), the
    REST API waits its turn in the background while the service, link and NLB go; the destroy ends once it too is
    gone."""
    from urllib.parse import urlparse

    from vpclink_runbooks.aws import pacing
    from vpclink_runbooks.aws.quotas import QUOTAS

    assert run("apply", LOCAL).exit_code == 0
    monkeypatch.setenv("RUNBOOK_PACE", "on")
    monkeypatch.setenv("RUNBOOK_PACE_DIR", str(tmp_path))
    monkeypatch.setenv("RUNBOOK_QUOTA_SCALE", "0.1")  # one DeleteRestApi per 3.3 s
    prefix = pacing._key(f"123456789012-eu-west-2-{urlparse(sandbox.endpoint).netloc}")
    slot = tmp_path / f"{prefix}-apigateway-DeleteRestApi"
    for _ in range(2):  # two destroys of a batch went first: ours is due ~6.6 s from now
        pacing.reserve(slot, QUOTAS[("apigateway", "DeleteRestApi")].scaled(0.1))
    result = run("destroy", LOCAL, yes=True)
    rec = record(result)
    assert result.exit_code == 0 and rec["status"] == "succeeded", rec.get("error")
    assert counts(sandbox) == NOTHING, owned(sandbox)
    at = {c["operation"]: c["at"] for c in rec["changes"]}
    # the teardown went on while the API waited for its turn
    assert at["UpdateService"] < at["DeleteRestApi"] and at["DeleteVpcLink"] < at["DeleteRestApi"], at
    assert rec["changes"][0]["operation"] == "DeleteBasePathMapping"
