"""The benchmark harness: the reference builds the same working chain as the runbook, and --quick produces the
documented results (shape and invariants, never timings)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from benchmarks import reference as bench_reference
from benchmarks import report as bench_report
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
    made = [op for op, times in verify_only["by_operation"].items() for _ in range(times)]
    assert sorted(made) == sorted(bench_reference.VERIFY_READS)


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


STEPS = ["00_inspect.ipynb", "10_nlb.ipynb", "20_vpc_link.ipynb", "30_ecs_service.ipynb", "40_api.ipynb",
         "50_verify.ipynb"]


def test_quick_benchmark_writes_every_measurement(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    _plain_lifecycle(results["plain"])
    _aws_like(results["aws_like"], tmp_path)
    _batch(results["many"])
    floor = results["floor"]
    assert floor["seconds"]["runs"] == 1 and floor["seconds"]["median"] > 0
    assert all(part["seconds"]["median"] > 0 for part in floor["parts"].values())
    assert set(floor["parts"]) == {"interpreter", "papermill import", "kernel start", "lib import in a kernel", "page"}
    assert set(results["targets"]) == set(bench_report.TARGETS)
    assert results["targets"]["reapply_mutating"]["met"] and results["targets"]["many_throttled"]["met"]
    assert results["targets"]["many_failed"]["met"]
    table = (tmp_path / "results.md").read_text()
    assert out.stdout.strip() == table.strip()
    assert "a --quick smoke run" in table and results["commit"] in table
    for label in ("cold apply, whole process", "cold apply API calls", "re-apply mutating calls",
                  "verify, cost above the floor", "`runbook apply E1..E2 --parallel 2`",
                  "`runbook destroy E1..E2 --yes --parallel 2`", "apply + destroy", "throttled calls"):
        assert f"| {label} |" in table
    assert "Floor: papermill running one notebook" in table and "| `import papermill` |" in table


def _plain_lifecycle(plain: dict) -> None:
    for key in ("apply", "reapply", "verify", "destroy", "reference", "reference_verify"):
        assert plain[key]["seconds"]["runs"] == 1 and plain[key]["calls"] > 0
    assert plain["apply"]["mutating"] > 0 and plain["reapply"]["mutating"] == plain["verify"]["mutating"] == 0
    assert plain["destroy"]["mutating"] > 0 and plain["reference_verify"]["mutating"] == 0
    assert [s["notebook"] for s in plain["apply"]["steps"]] == STEPS


def _aws_like(aws: dict, out) -> None:
    from vpclink_runbooks.sandbox.profile import Profile

    # the profile's own delays at the quick scale, not numbers of the harness's
    assert aws["profile"]["delays_s"] == vars(Profile(scale=0.02).delays())
    assert aws["apply"]["status"] == "succeeded" and aws["apply"]["mutating"] > 0 and aws["apply"]["polls"] > 0
    assert aws["reapply"]["mutating_each_run"] == [0] and aws["verify"]["mutating"] == 0
    assert aws["apply"]["throttled"] == aws["reapply"]["throttled"] == 0
    assert aws["reference"]["mutating"] > 0 and aws["reference"]["polls"] > 0
    assert aws["reference_verify"]["calls"] == len(bench_reference.VERIFY_READS)
    # 20_vpc_link and 30_ecs_service overlap: the service starts before the link's step ends
    steps = {s["notebook"]: s for s in aws["apply"]["steps"]}
    assert list(steps) == STEPS
    link, service = steps["20_vpc_link.ipynb"], steps["30_ecs_service.ipynb"]
    assert service["started_after"] < link["started_after"] + link["seconds"]
    # the time line of that apply, in --out for a quick run (the committed picture stays the full run's)
    picture = out / "apply-gantt-aws-like.svg"
    assert aws["gantt"]["path"] == str(picture)
    names = [t.text for t in ET.fromstring(picture.read_text()).iter("{http://www.w3.org/2000/svg}text")]
    assert all(step.removesuffix(".ipynb") in names for step in STEPS)


def _batch(many: dict) -> None:
    assert many["environments"] == 2 and many["parallel"] == 2
    for command in ("apply", "destroy"):
        batch = many[command]
        assert batch["failed"] == 0 and batch["throttled"] == 0
        assert batch["peak_rss_mb"] > 0 and batch["cpu_seconds"]["median"] > 0
        assert batch["single"]["status"] == ["succeeded"]
        assert batch["floor_s"] >= batch["single"]["seconds"]["median"]
        assert batch["floor_s"] >= max(batch["quota_floor_s"].values())
    assert many["apply"]["quota_calls"]["apigateway.CreateRestApi"] == 2
    assert many["destroy"]["quota_calls"]["apigateway.DeleteRestApi"] == 2


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
