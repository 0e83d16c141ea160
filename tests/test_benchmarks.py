"""The benchmark harness: the reference builds the same working chain as the runbook, and --quick produces the
documented results (shape and invariants, never timings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks import reference as bench_reference
from benchmarks import run as bench
from vpclink_runbooks.params import load_params
from vpclink_runbooks.run.runner import run

from .conftest import ROOT
from .lifecycle import LOCAL, counts, record

pytestmark = pytest.mark.notebooks

REFERENCE = [sys.executable, str(ROOT / "benchmarks" / "reference.py"), LOCAL]


def reference(*extra: str) -> dict:
    out = subprocess.run([*REFERENCE, *extra], env=dict(os.environ), cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_reference_builds_the_chain_the_runbook_would(sandbox):
    built = reference()
    assert built["verified"] == {"ok": True, "problems": [], "healthy_targets": 2}
    reads = bench_reference.READ_ONLY_PREFIXES
    mutating = {op for op in built["by_operation"] if not op.split(".")[1].startswith(reads)}
    assert {"ec2.CreateSecurityGroup", "elbv2.CreateLoadBalancer", "elbv2.SetSecurityGroups",
            "apigateway.CreateVpcLink", "ecs.CreateService", "apigateway.PutIntegration",
            "apigateway.CreateDeployment", "apigateway.CreateBasePathMapping"} <= mutating
    assert built["mutating"] == sum(built["by_operation"][op] for op in mutating)
    # the instances admit the host port from the NLB's own group: one rule, as the runbook makes
    assert counts(sandbox) == {"load_balancers": 1, "target_groups": 1, "vpc_links": 1, "rest_apis": 1,
                               "ecs_services": 1, "task_definitions": 1, "security_group_rules": 1, "lock": 0}
    # The runbook's own verify passes every hop of what the reference built, with no warning of another shape ...
    verify = run("verify", LOCAL)
    checks = record(verify)["checks"]
    assert verify.exit_code == 0, [c for c in checks if c["status"] != "pass"]
    assert [c for c in checks if c["status"] not in ("pass", "skip", "info")] == []
    assert {c["hop"] for c in checks if c["status"] == "pass"} >= {
        "mapping", "stage", "integration", "vpc_link", "nlb", "listener", "target_group", "targets",
        "task_definition", "security_group", "service"}
    # ... and apply finds nothing to change: the reference built the same chain, so the comparison is fair.
    again = run("apply", LOCAL)
    assert again.exit_code == 0 and record(again)["changes"] == [], record(again)["changes"]
    again_plan = [row for row in record(again)["plan"] if row.get("action") not in (None, "none")]
    assert again_plan == []
    # its verification reads what the runbook's checks read, each once (benchmarks/README.md lists them)
    verify_only = reference("--verify-only")
    assert verify_only["verified"]["ok"] and verify_only["mutating"] == 0
    reads = [op for op, times in verify_only["by_operation"].items() for _ in range(times)]
    assert sorted(reads) == sorted(bench_reference.VERIFY_READS)


def test_the_reference_polls_as_often_as_the_runbook():
    from vpclink_runbooks.aws import waits

    assert bench_reference.POLL_SECONDS == waits.POLL_SECONDS


def test_benchmark_environments_are_valid_and_do_not_collide(tmp_path):
    envs = bench.environment_params(ROOT / "params" / "local.yaml", 10, tmp_path)
    params = [load_params(path) for path, _ in envs]
    for field in (lambda p: p.environment, lambda p: p.service.name, lambda p: p.service.host_port,
                  lambda p: p.api.base_path, lambda p: p.listener_port):
        assert len({field(p) for p in params}) == 10
    assert [p.environment for p in params] == [name for _, name in envs]


def test_a_sandbox_that_cannot_start_says_why(tmp_path):
    with pytest.raises(RuntimeError, match="did not start"):
        bench.Sandbox(tmp_path / "missing.yaml", tmp_path)


def test_quick_benchmark_writes_every_measurement(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    life = results["lifecycle"]
    for key in ("apply", "reapply", "verify", "destroy", "reference", "reference_verify"):
        assert life[key]["seconds"]["runs"] == 1 and life[key]["seconds"]["median"] > 0
        assert life[key]["calls"] > 0
    assert life["apply"]["mutating"] > 0 and life["reapply"]["mutating"] == 0 and life["verify"]["mutating"] == 0
    assert life["destroy"]["mutating"] > 0 and life["reference_verify"]["mutating"] == 0
    assert [s["notebook"] for s in life["apply"]["last"]["steps"]] == [
        "00_inspect.ipynb", "10_nlb.ipynb", "20_vpc_link.ipynb", "30_ecs_service.ipynb", "40_api.ipynb",
        "50_verify.ipynb"]
    # 20_vpc_link and 30_ecs_service overlap: the service starts before the link's step ends
    steps = {s["notebook"]: s for s in results["aws_like"]["apply"]["steps"]}
    link, service = steps["20_vpc_link.ipynb"], steps["30_ecs_service.ipynb"]
    assert service["started_after"] < link["started_after"] + link["seconds"]
    assert results["aws_like"]["critical_path_delays_s"] > 0
    many = results["many"]
    assert many["environments"] == 2 and many["sequential"]["succeeded"] == many["parallel"]["succeeded"] == 2
    assert many["parallel"]["peak_rss_mb"] > 0
    assert set(results["targets"]) == set(bench.TARGETS)
    # the floor: papermill on a notebook that only imports lib, no AWS; it is a real, finished run of papermill
    assert results["floor"]["seconds"]["runs"] == 1 and results["floor"]["seconds"]["median"] > 0
    assert results["ratios"]["floor_vs_reference_verify"] > 0
    table = (tmp_path / "results.md").read_text()
    assert out.stdout.strip() == table.strip()
    for label in ("cold apply, whole process", "no-op re-apply", "verify alone", "cold apply API calls",
                  "re-apply mutating calls", "apply with AWS-like delays", "2 environments, --parallel 2"):
        assert f"| {label} |" in table
    assert "Floor: papermill running one notebook" in table


def test_apply_of_several_environments_refuses_bad_input_before_any_run(tmp_path, capsys):
    from vpclink_runbooks import cli

    assert cli.main(["apply", LOCAL, LOCAL, "--parallel", "2"]) == 2
    assert "environment local given twice" in capsys.readouterr().err
    assert cli.main(["apply", LOCAL, LOCAL, "--parallel", "0"]) == 2
    assert "--parallel: 0 is not a number of runs at once" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "params" / "local.yaml").read_text().replace("host_port: 10000", "host_port: 80000"))
    assert cli.main(["apply", LOCAL, str(bad)]) == 2
    assert "service.host_port" in capsys.readouterr().err


def test_a_reused_kernel_keeps_no_names_from_the_previous_notebook():
    import asyncio

    from vpclink_runbooks.run import runner

    pool = runner.KernelPool(["40_api", "50_verify"], size=1)
    try:
        km = pool.take("40_api")
        asyncio.run(runner._send(km, "leftover = 1\nimport vpclink_runbooks.steps.api", wait_reply=True))
        pool.give_back(km, succeeded=True)
        again = pool.take("50_verify")
        assert again is km  # reused, not restarted
        with pytest.raises(RuntimeError, match="NameError"):
            asyncio.run(runner._send(again, "leftover", wait_reply=True))
        asyncio.run(runner._send(again, "assert 'vpclink_runbooks.steps.api' in __import__('sys').modules",
                                 wait_reply=True))  # imported modules stay loaded
        pool.give_back(again, succeeded=True)
    finally:
        pool.close()
