"""A runbook apply killed mid-run is sealed `interrupted` by the next command; a run beside another leaves its chain
alone. Real subprocesses against the sandbox, killed like a crashed machine."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess

import pytest
from botocore.exceptions import ClientError

from vpclink_runbooks.aws import session as aws_mod
from vpclink_runbooks.cli import main
from vpclink_runbooks.params import load_params
from vpclink_runbooks.run import audit
from vpclink_runbooks.run.runner import run

from .lifecycle import LOCAL, calls, kill, new_run_dir, record, runs_dir, start, wait_for

pytestmark = pytest.mark.notebooks


def run_folders() -> list:
    return sorted(p for p in runs_dir().iterdir() if audit.RUN_ID.match(p.name))


def _apply_until_its_first_change(before: set) -> tuple:
    """A `runbook apply` subprocess and its run folder, once its first mutating call succeeded."""
    proc = start("apply", LOCAL)
    run_dir = new_run_dir(before)
    try:
        wait_for(lambda: any(c["mutating"] and c["result"] == "ok" for c in calls(run_dir)), proc,
                 what="the apply's first change")
    except BaseException:
        kill(proc)
        raise
    return proc, run_dir


def test_an_apply_killed_mid_run_is_sealed_interrupted_by_the_next_command(sandbox, capsys):
    lab = runs_dir() / "lab"  # working notebooks of `runbook lab`: not a run
    lab.mkdir(parents=True, exist_ok=True)
    (lab / "10_nlb.ipynb").write_text("{}")
    before = set(runs_dir().glob("*"))
    proc, run_dir = _apply_until_its_first_change(before)
    try:
        marker = json.loads((run_dir / audit.MARKER).read_text())
        assert marker["status"] == "running" and marker["pid"] == proc.pid
        assert marker["host"] == socket.gethostname() and marker["run_id"] == run_dir.name
    finally:
        kill(proc)
    assert not (run_dir / "run.json").exists()  # it really died mid-run
    made = [(c["operation"], c["resource"]) for c in calls(run_dir) if c["mutating"] and c["result"] == "ok"]
    assert made

    # the next command on the environment: destroy without --yes (90_destroy in plan mode)
    result = run("destroy", LOCAL)
    assert result.exit_code == 0, record(result).get("error")
    killed = json.loads((run_dir / "run.json").read_text())
    assert killed["status"] == "interrupted" and killed["command"] == "apply"
    assert killed["pid"] == proc.pid and killed["host"] == socket.gethostname()
    assert killed["account"] == load_params(LOCAL).account_id
    assert [(c["operation"], c["resource"]) for c in killed["changes"]] == made
    assert all(c["request_id"] for c in killed["changes"])
    assert killed["api_calls"]["mutating"] >= len(made) and not (run_dir / audit.MARKER).exists()
    assert "INTERRUPTED" in (run_dir / "index.html").read_text()
    # the destroy ran after the seal: it chains to the interrupted record
    destroy = record(result)
    assert destroy["previous"] == {"run_id": run_dir.name, "sha256": audit.sha256_file(run_dir / "run.json")}

    # the destroy plan's rows are in its run.json and its index.html
    deletes = [row for row in destroy["plan"] if row["action"] == "delete"]
    assert deletes, destroy["plan"]
    index = (result.run_dir / "index.html").read_text()
    assert "<h2>Plan</h2>" in index and all(row["resource"] in index for row in deletes)
    assert f"{len(deletes)} planned change(s)" in index

    # who, where: run.json, index.html and the executed notebook's header table
    assert destroy["endpoint_kind"] == "sandbox" and destroy["endpoint"] == sandbox.endpoint
    assert destroy["host"] == socket.gethostname() and destroy["user"]
    assert f"sandbox (embedded AWS emulator) at {sandbox.endpoint}" in index
    assert destroy["host"] in index and destroy["user"] in index
    notebook = (result.run_dir / "90_destroy.ipynb").read_text()
    assert "local user" in notebook and f"{destroy['user']}@{destroy['host']}" in notebook
    destroy_calls = calls(result.run_dir)
    assert destroy_calls and all(c["request_id"] for c in destroy_calls)

    capsys.readouterr()
    assert main(["runs", "local"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if run_dir.name in line]
    assert len(listed) == 1 and " interrupted " in listed[0]
    assert main(["runs", "local", "--verify"]) == 0
    out = capsys.readouterr().out
    assert f"{len(run_folders())} run record(s) intact" in out and "not sealed yet" not in out


def test_a_repair_plan_shows_its_rows_in_index_html(sandbox):
    result = run("repair", LOCAL)  # without --yes: 50_verify in repair-plan mode
    rec = record(result)
    assert rec["steps"][0]["notebook"] == "50_verify.ipynb"
    index = (result.run_dir / "index.html").read_text()
    plan = rec.get("plan", [])
    planned = [row for row in plan if row["action"] != "none"]
    assert planned, plan  # the killed apply left the chain half built: repair would create the rest
    assert "<h2>Plan</h2>" in index and f"{len(planned)} planned change(s) of {len(plan)} plan row(s)" in index
    assert all(row["resource"] in index for row in plan)


def test_a_plan_beside_a_running_apply_leaves_its_record_and_the_chain_intact(sandbox, capsys):
    before = set(runs_dir().glob("*"))
    proc, run_dir = _apply_until_its_first_change(before)
    try:
        os.killpg(proc.pid, signal.SIGSTOP)  # the apply is alive but makes no progress while the plan runs
        try:
            plan = run("plan", LOCAL)
        finally:
            os.killpg(proc.pid, signal.SIGCONT)
        assert plan.exit_code == 0, record(plan).get("error")
        assert (run_dir / audit.MARKER).exists() and not (run_dir / "run.json").exists()  # not sealed by the plan
        assert record(plan)["previous"]["run_id"] != run_dir.name
        capsys.readouterr()
        assert main(["runs", "local", "--verify"]) == 0
        out = capsys.readouterr().out
        assert f"{len(run_folders()) - 1} run record(s) intact" in out and f"local/{run_dir.name}" in out
        out, _ = proc.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        kill(proc)
        raise
    finally:
        if proc.poll() is None:
            kill(proc)
    assert proc.returncode == 0, out[-3000:]
    applied = json.loads((run_dir / "run.json").read_text())
    assert applied["status"] == "succeeded" and applied["previous"]["run_id"] < run_dir.name
    assert main(["runs", "local", "--verify"]) == 0
    assert f"{len(run_folders())} run record(s) intact" in capsys.readouterr().out


def test_an_error_answer_carries_its_request_id(sandbox):
    aws = aws_mod.connect(load_params(LOCAL))
    with pytest.raises(ClientError):
        aws.elbv2.describe_load_balancers(Names=["no-such-load-balancer"])
    last = aws.recorder.calls[-1]
    assert last["result"] == "LoadBalancerNotFound" and last["request_id"]
