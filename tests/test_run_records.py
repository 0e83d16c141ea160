"""Run records without AWS: code_clean, running markers, interrupted runs sealed by the next command, request ids.

The real thing (a runbook apply killed mid-run on the sandbox) is tests/test_interrupted.py."""

from __future__ import annotations

import getpass
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from vpclink_runbooks.aws.session import request_id_of
from vpclink_runbooks.cli import main
from vpclink_runbooks.context import Context
from vpclink_runbooks.params import load_params
from vpclink_runbooks.run import audit
from vpclink_runbooks.run.runner import seal_interrupted

from .conftest import ROOT


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    repo = tmp_path / "repo"
    for name, text in {"lib/code.py": "x = 1\n", "params/local.yaml": "environment: local\n",
                       "README.md": "docs\n"}.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "init")
    return repo


def test_code_clean_ignores_untracked_files_and_params(repo):
    assert audit.code_clean(repo) is True
    (repo / "terraform").mkdir()
    (repo / "terraform" / "imports.tf").write_text("import {}\n")  # export output
    (repo / "exported.json").write_text("{}")
    (repo / "params" / "prod.yaml").write_text("environment: prod\n")  # a user's own params file
    (repo / "params" / "local.yaml").write_text("environment: local\nregion: us-east-1\n")  # tracked, edited
    assert audit.code_clean(repo) is True


@pytest.mark.parametrize("change", ["modified", "staged", "deleted"])
def test_code_clean_is_false_when_tracked_code_changed(repo, change):
    code = repo / "lib" / "code.py"
    if change == "deleted":
        code.unlink()
    else:
        code.write_text("x = 2\n")
        if change == "staged":
            git(repo, "add", "lib/code.py")
    assert audit.code_clean(repo) is False


def test_code_clean_is_none_outside_a_git_work_tree(tmp_path):
    assert audit.code_clean(tmp_path) is None


def test_gitignore_ignores_terraform_and_notebook_checkpoints():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git work tree")
    for path in ("terraform/main.tf", "notebooks/.ipynb_checkpoints/10_nlb-checkpoint.ipynb"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0, path


# --- running and interrupted runs -------------------------------------------------------------------------


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def sealed_run(root: Path, run_id: str, env: str = "dev") -> Path:
    run_dir = root / env / run_id
    run_dir.mkdir(parents=True)
    (run_dir / "index.html").write_text("<p>run</p>")
    audit.seal(run_dir, {"run_id": run_id, "environment": env, "command": "plan", "status": "succeeded",
                         "changes": [], "checks": []})
    return run_dir


def running_run(root: Path, run_id: str, env: str = "dev", **marks) -> Path:
    """A folder as the runner leaves it while it runs (or after it was killed): running.json and calls.jsonl."""
    run_dir = root / env / run_id
    run_dir.mkdir(parents=True)
    audit.write_marker(run_dir, {"run_id": run_id, "environment": env, "command": "apply", "status": "failed",
                                 "account": "123456789012", "steps": [], "changes": [], "checks": []})
    if marks:
        marker = json.loads((run_dir / audit.MARKER).read_text())
        (run_dir / audit.MARKER).write_text(json.dumps({**marker, **marks}))
    now = time.time()
    calls = [{"time": now - 2, "service": "elbv2", "operation": "DescribeLoadBalancers", "mutating": False,
              "resource": "", "result": "ok", "request_id": "r-1"},
             {"time": now - 1, "service": "elbv2", "operation": "CreateLoadBalancer", "mutating": True,
              "resource": "Name=dev-nlb", "result": "ok", "request_id": "r-2"},
             {"time": now, "service": "elbv2", "operation": "CreateTargetGroup", "mutating": True,
              "resource": "Name=dev-tg", "result": "ValidationError", "request_id": "r-3"}]
    (run_dir / "calls.jsonl").write_text("".join(json.dumps(c) + "\n" for c in calls))
    (run_dir / "plan.jsonl").write_text(json.dumps({"resource": "nlb dev-nlb", "action": "create", "current": "-",
                                                    "desired": "internal", "why": "missing"}) + "\n")
    (run_dir / "10_nlb.ipynb").write_text("{not a whole notebook: cut off mid-write")
    return run_dir


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNBOOK_RUNS_DIR", str(tmp_path))
    return tmp_path


def test_a_run_whose_process_is_gone_is_sealed_interrupted_with_its_calls(root, capsys):
    first = sealed_run(root, "20261202T070000Z-aaaaaa")
    killed = running_run(root, "20261202T071000Z-bbbbbb", pid=dead_pid())
    assert audit.run_state(killed) == "gone"
    assert seal_interrupted("dev") == [killed]
    record = json.loads((killed / "run.json").read_text())
    assert record["status"] == "interrupted" and record["command"] == "apply"
    assert record["account"] == "123456789012" and record["host"] == socket.gethostname()
    assert [c["operation"] for c in record["changes"]] == ["CreateLoadBalancer"]
    assert [c["operation"] for c in record["failed_changes"]] == ["CreateTargetGroup"]
    assert record["api_calls"]["total"] == 3 and record["api_calls"]["mutating"] == 2
    assert record["plan"][0]["action"] == "create"
    assert "is gone" in record["interrupted"]["why"] and record["finished_at"]
    assert record["previous"] == {"run_id": first.name, "sha256": audit.sha256_file(first / "run.json")}
    assert not (killed / audit.MARKER).exists()
    assert {"calls.jsonl", "plan.jsonl", "index.html", "10_nlb.ipynb"} <= set(record["artifacts"])
    assert "INTERRUPTED" in (killed / "index.html").read_text() and "CreateLoadBalancer" in \
        (killed / "index.html").read_text()
    assert audit.verify(root) == []
    assert seal_interrupted("dev") == []  # sealed once
    capsys.readouterr()
    assert main(["runs", "dev"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if killed.name in line]
    assert len(listed) == 1 and " interrupted " in listed[0]


def test_a_live_run_is_neither_sealed_nor_picked_as_previous(root, capsys):
    """A plan beside a running apply: the apply's folder is left alone and the plan chains past it."""
    first = sealed_run(root, "20261202T070000Z-aaaaaa")
    live = running_run(root, "20261202T071000Z-bbbbbb")  # this process: alive
    assert audit.run_state(live) == "running"
    assert seal_interrupted("dev") == []
    later = sealed_run(root, "20261202T072000Z-cccccc")
    assert json.loads((later / "run.json").read_text())["previous"]["run_id"] == first.name
    assert (live / audit.MARKER).exists() and not (live / "run.json").exists()
    capsys.readouterr()
    assert main(["runs", "dev"]) == 0
    out = capsys.readouterr().out
    assert any(live.name in line and " running " in line and f"pid {os.getpid()}" in line
               for line in out.splitlines())
    assert main(["runs", "--verify"]) == 0
    out = capsys.readouterr().out
    assert "2 run record(s) intact" in out and "1 run folder(s) not sealed yet" in out and live.name in out
    # the apply ends later and seals: it chains to the record before it, and everything verifies
    audit.seal(live, json.loads((live / audit.MARKER).read_text()))
    assert json.loads((live / "run.json").read_text())["previous"]["run_id"] == first.name
    assert audit.verify(root) == []


def test_another_hosts_run_is_listed_running_and_never_sealed_here(root, capsys):
    elsewhere = running_run(root, "20261202T071000Z-bbbbbb", host="other-machine", pid=dead_pid())
    assert seal_interrupted("dev") == []
    assert main(["runs", "dev"]) == 0
    assert "pid" in capsys.readouterr().out and (elsewhere / audit.MARKER).exists()


def test_a_reused_pid_does_not_keep_a_dead_run_running(root):
    reused = running_run(root, "20261202T071000Z-bbbbbb", pid_started="1")  # our pid, but a later process
    assert audit.run_state(reused) == "gone"


def test_two_commands_looking_at_once_claim_a_dead_run_once(root):
    running_run(root, "20261202T071000Z-bbbbbb", pid=dead_pid())
    assert len(audit.claim_interrupted(root / "dev")) == 1
    assert audit.claim_interrupted(root / "dev") == []


def test_a_folder_without_marker_is_sealed_only_after_an_hour_without_change(root):
    orphan = running_run(root, "20261202T071000Z-bbbbbb")
    (orphan / audit.MARKER).unlink()  # a run of an older version, killed
    assert seal_interrupted("dev") == []
    old = time.time() - audit.ORPHAN_SECONDS - 60
    for path in orphan.iterdir():
        os.utime(path, (old, old))
    assert seal_interrupted("dev") == [orphan]
    record = json.loads((orphan / "run.json").read_text())
    assert record["status"] == "interrupted" and len(record["changes"]) == 1
    assert audit.verify(root) == []


def test_only_folders_named_like_run_ids_are_records(root, capsys):
    sealed_run(root, "20261202T070000Z-aaaaaa")
    lab = root / "dev" / "lab"
    lab.mkdir()
    (lab / "10_nlb.ipynb").write_text("{}")
    (lab / "run.json").write_text("{}")
    assert audit.run_dirs(root) == [root / "dev" / "20261202T070000Z-aaaaaa"] and audit.unsealed_dirs(root) == []
    assert audit.verify(root) == []
    assert seal_interrupted("dev") == [] and not (lab / "index.html").exists()
    assert main(["runs", "--verify"]) == 0
    assert "1 run record(s) intact" in capsys.readouterr().out
    later = sealed_run(root, "20261202T072000Z-cccccc")
    assert json.loads((later / "run.json").read_text())["previous"]["run_id"] == "20261202T070000Z-aaaaaa"


def test_a_deleted_run_json_is_reported_not_resealed(root):
    sealed = sealed_run(root, "20261202T070000Z-aaaaaa")
    (sealed / "run.json").unlink()
    assert seal_interrupted("dev") == []
    assert [p["problem"].split(" (")[0] for p in audit.verify(root)] == ["deleted after the run"]


# --- request ids and the notebook header --------------------------------------------------------------------


def test_request_id_from_metadata_or_headers():
    assert request_id_of({"ResponseMetadata": {"RequestId": "abc", "HTTPHeaders": {}}}) == "abc"
    assert request_id_of({"ResponseMetadata": {"HTTPHeaders": {"x-amzn-requestid": "def"}}}) == "def"
    assert request_id_of({"Error": {"Code": "NoSuchKey"},
                          "ResponseMetadata": {"HTTPHeaders": {"x-amz-request-id": "s3-id"}}}) == "s3-id"
    assert request_id_of({}, SimpleNamespace(headers={"X-Amzn-RequestId": "hdr"})) == "hdr"
    assert request_id_of({}) is None


def test_the_notebook_header_names_the_endpoint_and_the_local_user_and_host():
    params = load_params(ROOT / "params" / "local.yaml")
    identity = {"account": params.account_id, "caller_arn": "arn:aws:iam::1:user/x", "region": params.region}
    context = Context(params=params, aws=SimpleNamespace(endpoint="http://127.0.0.1:4566"), names=None,
                      mode="plan", identity=identity)
    rows = dict(zip(context.header()[""], context.header()["value"], strict=True))
    assert rows["endpoint"] == "http://127.0.0.1:4566" and rows["sandbox"] is True
    assert rows["local user"] == f"{os.environ.get('USER') or getpass.getuser()}@{socket.gethostname()}"
    real = Context(params=params.model_copy(update={"sandbox": False}), aws=SimpleNamespace(endpoint=None),
                   names=None, mode="plan", identity=identity)
    rows = dict(zip(real.header()[""], real.header()["value"], strict=True))
    assert rows["endpoint"] == "AWS (standard endpoints)" and rows["sandbox"] is False
