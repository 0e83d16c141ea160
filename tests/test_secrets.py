"""Secrets are never recorded: only their ARNs reach the kernel, notebooks, HTML, run.json and logs."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

import pytest

from vpclink_runbooks.cli import main
from vpclink_runbooks.run.runner import run

from .conftest import write_params

pytestmark = pytest.mark.notebooks

SSM_VALUE = "s3cr3t-Zq9-ssm-7f3a91c2"
SM_VALUE = "s3cr3t-Zq9-sm-b81e44d0"
ACCOUNT = "123456789012"


def every_file(root: Path):
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def secret_runs(sandbox, tmp_path_factory):
    """Apply and verify with service.secrets naming a real SSM SecureString and a Secrets Manager secret."""
    session = sandbox.session("eu-west-2")
    ssm, sm = session.client("ssm"), session.client("secretsmanager")
    ssm.put_parameter(Name="/orders/audit-db", Value=SSM_VALUE, Type="SecureString")
    ssm_arn = f"arn:aws:ssm:eu-west-2:{ACCOUNT}:parameter/orders/audit-db"
    sm_arn = sm.create_secret(Name="orders/api-token", SecretString=SM_VALUE)["ARN"]
    tmp = tmp_path_factory.mktemp("secrets")
    path = write_params(tmp, service__secrets={"CONNECTION_STRING": ssm_arn, "API_TOKEN": sm_arn})
    root = tmp / "runs"
    saved = os.environ["RUNBOOK_RUNS_DIR"]
    os.environ["RUNBOOK_RUNS_DIR"] = str(root)
    log = tmp / "captured.log"
    # Capture what the runner prints and the kernels log (cell output, as --log-output streams it), at the
    # Python level and at the file-descriptor level (subprocesses).
    fd_out, fd_err = os.dup(1), os.dup(2)
    papermill_log = logging.getLogger("papermill")
    level = papermill_log.level
    try:
        with open(log, "w") as fh:
            handler = logging.StreamHandler(fh)
            papermill_log.addHandler(handler)
            papermill_log.setLevel(logging.INFO)
            os.dup2(fh.fileno(), 1)
            os.dup2(fh.fileno(), 2)
            try:
                with contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
                    results = [run("apply", str(path), log_output=True), run("verify", str(path), log_output=True)]
                    task_definition = session.client("ecs").describe_task_definition(
                        taskDefinition="local-orders")["taskDefinition"]
                    results.append(run("destroy", str(path), log_output=True, yes=True))
            finally:
                fh.flush()
                os.dup2(fd_out, 1)
                os.dup2(fd_err, 2)
                papermill_log.removeHandler(handler)
                papermill_log.setLevel(level)
    finally:
        os.close(fd_out)
        os.close(fd_err)
        os.environ["RUNBOOK_RUNS_DIR"] = saved
    return {"root": root, "results": results, "log": log, "arns": [ssm_arn, sm_arn], "td": task_definition}


def test_the_runs_succeed_with_the_secrets_referenced_by_arn(secret_runs):
    for result in secret_runs["results"]:
        rec = json.loads((result.run_dir / "run.json").read_text())
        assert result.exit_code == 0, rec.get("error")
    apply_rec = json.loads((secret_runs["results"][0].run_dir / "run.json").read_text())
    assert set(apply_rec["params"]["service"]["secrets"].values()) == set(secret_runs["arns"])


def test_no_secret_value_in_any_artifact_or_log_but_the_arns_are(secret_runs):
    files = every_file(secret_runs["root"]) + [secret_runs["log"]]
    assert len(files) > 20
    assert secret_runs["log"].stat().st_size > 0
    for path in files:
        data = path.read_bytes()
        for value in (SSM_VALUE, SM_VALUE, "s3cr3t-Zq9"):
            assert value.encode() not in data, f"secret value found in {path}"
    run_dir = secret_runs["results"][0].run_dir
    for arn in secret_runs["arns"]:
        assert arn in (run_dir / "run.json").read_text()
    # what ECS got: the ARNs, for the agent to resolve at task start
    assert sorted(s["valueFrom"] for s in secret_runs["td"]["containerDefinitions"][0]["secrets"]) == sorted(
        secret_runs["arns"])


def test_no_step_reads_a_secret_value(secret_runs):
    """The kernel never holds a value: no call that returns one (GetSecretValue, decrypted parameters)."""
    for result in secret_runs["results"]:
        calls = [json.loads(line) for line in (result.run_dir / "calls.jsonl").read_text().splitlines()]
        assert calls
        operations = {c["operation"] for c in calls}
        assert not operations & {"GetSecretValue", "GetParameter", "GetParameters", "GetParametersByPath",
                                 "BatchGetSecretValue"}


SECRET_LOOKING = {
    "password-assignment": ("DB_OPTS", "user=app password=Zq9-hunter2"),
    "url-with-credentials": ("DATABASE_URL", "postgres://app:Zq9-hunter2@db.internal:5432/orders"),
    "aws-secret-key-shape": ("SIGNING", "Zq9rXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY1"),
    "aws-access-key-id": ("UPSTREAM", "AKIAZQ9HUNTER2EXAMPL"),
    "private-key": ("TLS_KEY", "-----BEGIN RSA PRIVATE KEY-----\nMIIEZq9hunter2\n-----END RSA PRIVATE KEY-----"),
    "token-assignment": ("UPSTREAM_AUTH", "token: Zq9-hunter2"),
    "secret-named-variable": ("DB_PASSWORD", "Zq9-hunter2"),
}


@pytest.mark.parametrize("key, value", list(SECRET_LOOKING.values()), ids=list(SECRET_LOOKING))
@pytest.mark.parametrize("command", ["plan", "apply"])
def test_a_secret_looking_plain_environment_value_is_refused_at_validation(tmp_path, monkeypatch, capsys,
                                                                           key, value, command):
    runs = tmp_path / "runs"
    monkeypatch.setenv("RUNBOOK_RUNS_DIR", str(runs))
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: no AWS call may succeed
    path = write_params(tmp_path, service__environment={"LOG_LEVEL": "info", key: value})
    assert main([command, str(path)]) == 2
    err = capsys.readouterr().err
    assert f"service.environment.{key}" in err and "service.secrets" in err
    assert "hunter2" not in err  # the message names the variable, never echoes the value
    assert not runs.exists()


def test_a_secret_value_in_place_of_an_arn_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RUNBOOK_RUNS_DIR", str(tmp_path / "runs"))
    path = write_params(tmp_path, service__secrets={"CONNECTION_STRING": "Zq9-hunter2"})
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert "must be an ARN" in err and "hunter2" not in err
    assert not (tmp_path / "runs").exists()
