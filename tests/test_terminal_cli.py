"""Real `runbook` runs: a missing AWS profile is one clear error, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.notebooks
ROOT = Path(__file__).resolve().parents[1]


def test_missing_profile_is_one_clear_error_exit_2(tmp_path, monkeypatch):
    text = (ROOT / "params" / "local.yaml").read_text().replace("aws_profile: null", "aws_profile: nope-t16")
    params = tmp_path / "p.yaml"
    params.write_text(text)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    proc = subprocess.run([sys.executable, "-m", "vpclink_runbooks.cli", "verify", str(params)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    said = [line for line in (proc.stdout + proc.stderr).splitlines() if "nope-t16" in line]
    assert len(said) == 1 and said[0].startswith("aws_profile: the AWS profile 'nope-t16'"), proc.stdout + proc.stderr
    assert "REFUSED" in proc.stdout
    assert "runner: ProfileNotFound" not in proc.stderr + proc.stdout


def _runbook(*args: str, tmp_path) -> subprocess.CompletedProcess:
    # its own sandbox: no AWS_ENDPOINT_URL and no announced one, as a new user's first command
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    env["RUNBOOK_SANDBOX_FILE"] = str(tmp_path / "no-sandbox.json")
    env["RUNBOOK_RUNS_DIR"] = str(tmp_path / "runs")
    return subprocess.run([sys.executable, "-m", "vpclink_runbooks.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_destroy_plan_on_a_fresh_sandbox_exits_0_says_plan_only_and_that_the_sandbox_is_fresh(tmp_path):
    proc = _runbook("destroy", "local", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "destroy plan local: SUCCEEDED" in proc.stdout
    assert "plan only, nothing changed; rerun with --yes to apply" in proc.stdout
    assert "started a fresh sandbox for local" in proc.stderr and "none of the earlier runs" in proc.stderr
    assert "IPKernelApp" not in proc.stderr + proc.stdout


def test_repair_plan_of_nothing_applied_exits_1_saying_why_and_to_run_apply(tmp_path):
    proc = _runbook("repair", "local", tmp_path=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("verdict: not applied yet: run `runbook apply local`")
    assert "repair plan local: FAILED" in proc.stdout and "exit 1: the chain is still broken" in proc.stdout
    assert "plan only, nothing changed" in proc.stdout
    assert "IPKernelApp" not in proc.stderr + proc.stdout
