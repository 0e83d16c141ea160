"""Guards: wrong account, wrong region and unconfirmed protected environments are refused (exit 2), nothing changed."""

from __future__ import annotations

import json

import boto3
import pytest

from vpclink_runbooks import sandbox_link
from vpclink_runbooks.aws import session as aws_mod
from vpclink_runbooks.cli import main
from vpclink_runbooks.errors import GuardRefused
from vpclink_runbooks.params import load_params
from vpclink_runbooks.run.runner import run

from .conftest import ROOT, write_params

pytestmark = pytest.mark.notebooks

LOCAL = str(ROOT / "params" / "local.yaml")
OTHER_ACCOUNT = "210987654321"
CONFIRM = "local@123456789012"


def calls(result) -> list[dict]:
    log = result.run_dir / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_wrong_account_is_refused_with_exit_2_and_no_mutating_call(sandbox, tmp_path, capsys):
    path = write_params(tmp_path, account_id=OTHER_ACCOUNT,
                        service__secrets={"CONNECTION_STRING": f"arn:aws:ssm:eu-west-2:{OTHER_ACCOUNT}:parameter/db"})
    result = run("apply", str(path))
    rec = json.loads((result.run_dir / "run.json").read_text())
    assert result.exit_code == 2
    assert rec["status"] == "refused" and rec["changes"] == [] and rec["failed_changes"] == []
    assert rec["steps"] == []  # no notebook ran
    assert "account guard" in rec["error"] and OTHER_ACCOUNT in rec["error"]
    assert [c["operation"] for c in calls(result)] == ["GetCallerIdentity"]
    assert "artifacts" in rec  # the refusal is sealed like any other record
    assert main(["apply", str(path)]) == 2
    assert "account guard" in capsys.readouterr().err


@pytest.fixture
def no_aws(monkeypatch):
    """Any attempt to reach AWS (or start a sandbox) fails the test."""

    def forbidden(*_, **__):
        raise AssertionError("an AWS session was made")

    monkeypatch.setattr(aws_mod, "make_session", forbidden)
    monkeypatch.setattr(aws_mod, "connect", forbidden)
    monkeypatch.setattr(sandbox_link, "ensure_sandbox", forbidden)


@pytest.mark.parametrize("argv", [["apply"], ["repair", "--yes"], ["destroy", "--yes"], ["destroy"], ["repair"],
                                  ["apply", "--confirm", "local@999999999999"],
                                  ["destroy", "--yes", "--confirm", "prod@123456789012"]])
def test_protected_environment_needs_confirm_naming_environment_and_account(
        sandbox, tmp_path, capsys, no_aws, monkeypatch, argv):
    runs = tmp_path / "runs"
    monkeypatch.setenv("RUNBOOK_RUNS_DIR", str(runs))
    path = write_params(tmp_path, protected=True)
    assert main([argv[0], str(path), *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert f"needs --confirm {CONFIRM}" in err and "Nothing was changed" in err
    assert not runs.exists()  # refused before anything: no AWS call, no run folder


@pytest.mark.parametrize("command", ["plan", "verify"])
def test_read_only_commands_need_no_confirm(sandbox, tmp_path, command):
    path = write_params(tmp_path, protected=True)
    result = run(command, str(path))
    rec = json.loads((result.run_dir / "run.json").read_text())
    # verify before apply finds no chain (exit 1), but it ran: not refused
    assert rec["status"] != "refused" and rec["steps"] and result.exit_code in (0, 1)


def test_with_the_right_confirm_a_protected_environment_proceeds(sandbox, tmp_path):
    path = write_params(tmp_path, protected=True)
    destroy_plan = run("destroy", str(path), confirm=CONFIRM)  # plan only (no --yes), but past the guard
    assert destroy_plan.exit_code == 0
    assert json.loads((destroy_plan.run_dir / "run.json").read_text())["steps"][0]["status"] == "succeeded"
    applied = run("apply", str(path), confirm=CONFIRM)
    rec = json.loads((applied.run_dir / "run.json").read_text())
    assert applied.exit_code == 0, rec.get("error")
    assert rec["status"] == "succeeded" and rec["changes"]
    assert all(c["result"] == "ok" for c in rec["changes"])
    destroyed = run("destroy", str(path), confirm=CONFIRM, yes=True)
    assert destroyed.exit_code == 0


def test_region_guard_refuses_a_session_in_another_region():
    params = load_params(LOCAL)
    aws = aws_mod.Aws(boto3.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"))
    with pytest.raises(GuardRefused, match="region guard: the AWS session is in region us-east-1 but params say "
                                           "region eu-west-2"):
        aws_mod.check_region(aws, params)
    with pytest.raises(GuardRefused, match="region guard"):
        aws_mod.check_account(aws, params)  # before asking STS who the caller is
    aws_mod.check_region(aws_mod.Aws(boto3.Session(region_name="eu-west-2")), params)


def test_region_guard_refuses_the_run_with_exit_2_and_no_aws_call(sandbox, monkeypatch, capsys):
    """A profile/role that resolves to another region than params.region: refused before any call."""
    real = aws_mod.make_session

    def elsewhere(params):
        session = real(params)
        creds = session.get_credentials()
        return boto3.Session(aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
                             region_name="us-west-1")

    monkeypatch.setattr(aws_mod, "make_session", elsewhere)
    result = run("apply", LOCAL)
    rec = json.loads((result.run_dir / "run.json").read_text())
    assert result.exit_code == 2 and rec["status"] == "refused"
    assert "region guard" in rec["error"] and rec["changes"] == [] and rec["steps"] == []
    assert calls(result) == []
    assert main(["apply", LOCAL]) == 2
    assert "region guard" in capsys.readouterr().err
