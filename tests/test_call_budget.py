"""One inventory per run: across a command's notebooks a read (operation + parameters, i.e. one resource) is sent
once; waits' polls and the final verify's re-reads of what time changes aside (a world no other test builds)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from vpclink_runbooks.aws import run_inventory
from vpclink_runbooks.aws.run_inventory import FILE
from vpclink_runbooks.run.runner import run
from vpclink_runbooks.sandbox.world import WorldSpec, seed_world

from .conftest import ROOT

pytestmark = pytest.mark.notebooks

SPEC = WorldSpec(region="ap-southeast-2", vpc_id="vpc-0b0d5ea11ab1e5a7", vpc_cidr="10.41.0.0/16",
                 cluster="ledger-ecs", az_count=2, instances_per_az=2,
                 cluster_security_group_name="ledger-nodes", domain_name="gw.ledger.example.org",
                 other_api_name="billing", other_base_path="billing", other_stage="v1",
                 ssm_parameters={"/ledger/key": "k"}, ecr_images=["ledger:7.2"])
VERIFY = "50_verify"


@pytest.fixture(scope="module")
def params_path(sandbox, tmp_path_factory) -> Path:
    seed_world(sandbox.session(SPEC.region), SPEC)
    params = yaml.safe_load((ROOT / "params" / "local.yaml").read_text())
    params.update(environment="qa", sandbox=False, region=SPEC.region, vpc_id=SPEC.vpc_id, cluster=SPEC.cluster,
                  api={"domain_name": SPEC.domain_name, "base_path": "ledger", "stage": "qa"})
    params["service"].update(name="ledger", image="123456789012.dkr.ecr.ap-southeast-2.amazonaws.com/ledger:7.2",
                             container_port=9000, host_port=19090, desired_count=2, health_check_path="/healthz",
                             secrets={"KEY": "arn:aws:ssm:ap-southeast-2:123456789012:parameter/ledger/key"},
                             extra_ports=[])
    params["nlb"] = {"subnets": None, "listener_port": 9443}
    path = tmp_path_factory.mktemp("budget") / "qa.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def sent_reads(run_dir: Path) -> list[dict]:
    """Every read the run sent, with the notebook that sent it (the run inventory's "sent" answers)."""
    rows = [json.loads(line) for line in (run_dir / FILE).read_text().splitlines() if line.strip()]
    return [r for r in rows if "sent" in r]


def calls(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "calls.jsonl").read_text().splitlines() if line.strip()]


def resent(run_dir: Path) -> list[tuple[str, str]]:
    """(notebook, operation) of every read sent although the run inventory held its answer, polls and the final
    verify's FRESH reads aside: a second read of one resource that nothing changed in between."""
    return sorted({(r["sent"], r["operation"]) for r in run_inventory.resent(run_dir / FILE)
                   if "wait" not in r and not (r["sent"] == VERIFY and r["operation"] in run_inventory.FRESH)})


def read_twice(reads: list[dict]) -> list[str]:
    """Reads sent twice by key across the notebooks before the final verify (whatever changed in between)."""
    counts = Counter(r["key"] for r in reads if "wait" not in r and r["sent"] != VERIFY)
    return [key for key, n in counts.items() if n > 1]


def test_apply_reads_each_resource_once_and_verify_only_what_changed(params_path):
    cold = run("apply", str(params_path))
    assert cold.exit_code == 0, cold.record.get("error")
    assert cold.record["checks"] and [c for c in cold.record["checks"] if c["status"] == "fail"] == []
    reads = sent_reads(cold.run_dir)
    assert {r["sent"] for r in reads} >= {"00_inspect", "10_nlb", "30_ecs_service", VERIFY}
    assert read_twice(reads) == [], "a read was sent twice across the apply's notebooks"
    assert resent(cold.run_dir) == []
    # calls.jsonl names each call's notebook; only the runner's own identity check has none; and every read a
    # notebook sent is one the inventory kept (TestInvokeMethod's answer is never kept)
    made = calls(cold.run_dir)
    assert [c["operation"] for c in made if not c.get("step")] == ["GetCallerIdentity"]
    assert len([c for c in made if c.get("step") and not c["mutating"] and c["operation"] != "TestInvokeMethod"
                and c["result"] == "ok"]) <= len(reads)

    again = run("apply", str(params_path))
    assert again.exit_code == 0, again.record.get("error")
    assert again.record["api_calls"]["mutating"] == 0
    reads_again = sent_reads(again.run_dir)
    assert read_twice(reads_again) == [] and resent(again.run_dir) == []

    alone = run("verify", str(params_path))
    assert alone.exit_code == 0, alone.record.get("error")
    alone_reads = sent_reads(alone.run_dir)
    # the final verify of an apply reads less than a verify that starts from nothing
    assert len([r for r in reads if r["sent"] == VERIFY]) < len(alone_reads)
    assert len([r for r in reads_again if r["sent"] == VERIFY]) < len(alone_reads)
