"""The parameters contract: valid files load, bad files are refused before any AWS call.

Every bad file is params/local.yaml with one mutation. The CLI must exit 2, name the field by
its dotted path on the same line as a hint of what would be valid, and leave no run record.
Most cases run in-process (fast); a few representative ones run the real CLI as a subprocess.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from vpclink_runbooks import cli, sandbox_link
from vpclink_runbooks.aws import session as aws_mod
from vpclink_runbooks.context import merge_params
from vpclink_runbooks.errors import GuardRefused, ParamsError
from vpclink_runbooks.params import load_params, load_raw, parse_params
from vpclink_runbooks.run.runner import check_protected

ROOT = Path(__file__).resolve().parent.parent
LOCAL = yaml.safe_load((ROOT / "params" / "local.yaml").read_text())
CLOSED_ENDPOINT = "http://127.0.0.1:9"  # discard port: nothing listens, a call would fail


# ---------------------------------------------------------------------------------------------
# Valid files


@pytest.mark.parametrize(
    ("env", "sandbox", "protected", "account", "min_healthy"),
    [
        ("local", True, False, "123456789012", 50),
        ("dev", False, False, "111122223333", 50),
        ("staging", False, False, "444455556666", 50),
        ("prod", False, True, "777788889999", 66),
    ],
)
def test_example_params_load(env, sandbox, protected, account, min_healthy):
    params = load_params(ROOT / "params" / f"{env}.yaml")
    assert params.environment == env
    assert params.sandbox is sandbox
    assert params.protected is protected
    assert params.account_id == account
    assert params.region == "eu-west-2"
    assert params.service.name == "orders"
    assert params.nlb.listener_port is None
    assert params.listener_port == params.service.host_port == 10000
    assert params.minimum_healthy_percent == min_healthy
    # Every secret is an ARN of the environment's own account.
    assert all(arn.split(":")[4] == account for arn in params.service.secrets.values())


@pytest.mark.parametrize("env", ["local", "dev", "staging", "prod"])
def test_load_by_environment_name(env, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert load_params(env) == load_params(ROOT / "params" / f"{env}.yaml")


@pytest.mark.parametrize(("desired", "expected"), [(1, 0), (2, 50), (3, 66), (4, 75), (10, 90)])
def test_minimum_healthy_percent_frees_one_fixed_port(desired, expected):
    data = copy.deepcopy(LOCAL)
    data["service"]["desired_count"] = desired
    assert parse_params(data).minimum_healthy_percent == expected


def test_explicit_deployment_and_listener_port_override_defaults():
    data = copy.deepcopy(LOCAL)
    data["service"]["deployment"] = {"minimum_healthy_percent": 100, "maximum_percent": 200}
    data["nlb"]["listener_port"] = 80
    params = parse_params(data)
    assert params.minimum_healthy_percent == 100
    assert params.service.deployment.maximum_percent == 200
    assert params.listener_port == 80


def test_sha256_is_stable_and_sensitive():
    first, second = parse_params(copy.deepcopy(LOCAL)), parse_params(copy.deepcopy(LOCAL))
    assert first.sha256() == second.sha256()
    changed = copy.deepcopy(LOCAL)
    changed["service"]["desired_count"] = 3
    assert parse_params(changed).sha256() != first.sha256()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("GIT_SHA", "3f786850e387550fdab836ed7e6dc881de23001b"),  # a commit id is 40 hex chars, not a secret
        ("UPSTREAM_URL", "https://payments.internal.example.com:8443/v1"),
        ("JDBC_URL", "jdbc:postgresql://db.internal:5432/orders"),
        ("LOG_LEVEL", "debug"),
    ],
    ids=["git-sha", "url-without-credentials", "jdbc-url-without-credentials", "log-level"],
)
def test_plain_environment_values_that_are_not_secrets_are_accepted(key, value):
    data = copy.deepcopy(LOCAL)
    data["service"]["environment"][key] = value
    assert parse_params(data).service.environment[key] == value


def test_secretsmanager_arn_and_exposed_extra_port_are_accepted():
    data = copy.deepcopy(LOCAL)
    data["service"]["secrets"]["API_TOKEN"] = "arn:aws:secretsmanager:eu-west-2:123456789012:secret:orders/token-AbC123"
    data["service"]["extra_ports"] = [{"container_port": 7777, "host_port": 10001, "expose": True}]
    data["role_arn"] = "arn:aws:iam::123456789012:role/deployer"
    params = parse_params(data)
    assert params.service.extra_ports[0].expose is True
    assert params.role_arn.endswith("role/deployer")


def test_not_a_mapping_is_refused():
    with pytest.raises(ParamsError) as info:
        parse_params(["environment", "dev"], "x.yaml")
    assert info.value.problems[0][0] == "x.yaml"


# ---------------------------------------------------------------------------------------------
# Bad files: one mutation of params/local.yaml each


def _node(data: dict, dotted: str) -> tuple[dict, str]:
    *parents, leaf = dotted.split(".")
    for key in parents:
        data = data[key]
    return data, leaf


def setv(dotted: str, value: Any) -> Callable[[dict], dict]:
    def apply(data: dict) -> dict:
        node, leaf = _node(data, dotted)
        node[leaf] = value
        return data

    return apply


def delete(dotted: str) -> Callable[[dict], dict]:
    def apply(data: dict) -> dict:
        node, leaf = _node(data, dotted)
        del node[leaf]
        return data

    return apply


def rename(dotted: str, new_leaf: str) -> Callable[[dict], dict]:
    def apply(data: dict) -> dict:
        node, leaf = _node(data, dotted)
        node[new_leaf] = node.pop(leaf)
        return data

    return apply


def raw(text: str) -> Callable[[dict], str]:
    return lambda _data: text


SECRET_KEY_SHAPED = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # AWS's documented example secret key
assert len(SECRET_KEY_SHAPED) == 40
OTHER_ACCOUNT = "999999999999"

# (id, mutation, field named in stderr, substring of the fix on that field's line)
BAD_CASES: list[tuple[str, Callable, str, str]] = [
    ("misspelled-top-level-key", rename("environment", "enviroment"), "enviroment", "did you mean 'environment'"),
    ("misspelled-nested-key", rename("service.host_port", "host_prot"), "service.host_prot",
     "did you mean 'host_port'"),
    ("unknown-key", setv("nlb.idle_timeout", 60), "nlb.idle_timeout", "valid keys here: subnets, listener_port"),
    ("host-port-0", setv("service.host_port", 0), "service.host_port", "1024 and 32767"),
    ("host-port-70000", setv("service.host_port", 70000), "service.host_port", "1024 and 32767"),
    ("host-port-ephemeral", setv("service.host_port", 40000), "service.host_port", "1024 and 32767"),
    ("host-port-reserved-by-ecs-agent", setv("service.host_port", 51678), "service.host_port", "reserved by the ECS"),
    ("host-port-ssh-reserved", setv("service.host_port", 22), "service.host_port", "1024 and 32767"),
    ("container-port-string", setv("service.container_port", "abc"), "service.container_port", "whole number"),
    ("desired-count-0", setv("service.desired_count", 0), "service.desired_count", "at least 1"),
    ("desired-count-quoted", setv("service.desired_count", "2"), "service.desired_count", "whole number"),
    ("cpu-negative", setv("service.cpu", -1), "service.cpu", "at least 0"),
    ("missing-service-name", delete("service.name"), "service.name", "required"),
    ("missing-api-section", delete("api"), "api", "required"),
    ("empty-service-name", setv("service.name", ""), "service.name", "must not be empty"),
    ("service-name-uppercase", setv("service.name", "Orders"), "service.name", "lower-case"),
    ("names-over-elb-32-char-limit", setv("service.name", "order-processing-backend"), "service.name",
     "32-character limit"),
    ("environment-too-long", setv("environment", "integration-tests"), "environment", "at most 16 characters"),
    ("base-path-with-slash", setv("api.base_path", "orders/v1"), "api.base_path", "one segment"),
    ("base-path-empty", setv("api.base_path", ""), "api.base_path", "must not be empty"),
    ("region-europe", setv("region", "europe"), "region", "eu-west-2"),
    ("account-id-11-digits", setv("account_id", "12345678901"), "account_id", "12 digits"),
    ("account-id-unquoted-int", setv("account_id", 123456789012), "account_id", "quote it"),
    ("vpc-id-malformed", setv("vpc_id", "vpc-XYZ"), "vpc_id", "vpc-0a1b2c3d"),
    ("nlb-subnet-malformed", setv("nlb.subnets", ["subnet-0a1b2c3d", "sn-123"]), "nlb.subnets.1", "subnet-0a1b2c3d"),
    ("nlb-listener-port-0", setv("nlb.listener_port", 0), "nlb.listener_port", "at least 1"),
    ("secret-plain-password", setv("service.secrets.CONNECTION_STRING", "hunter2"),
     "service.secrets.CONNECTION_STRING", "must be an ARN"),
    ("secret-arn-malformed", setv("service.secrets.CONNECTION_STRING", "arn:aws:ssm:eu-west-2:1234:parameter/db"),
     "service.secrets.CONNECTION_STRING", "arn:aws:ssm:<region>:<account>:parameter/<name>"),
    ("secret-arn-other-account",
     setv("service.secrets.CONNECTION_STRING", f"arn:aws:ssm:eu-west-2:{OTHER_ACCOUNT}:parameter/orders/db"),
     "service.secrets.CONNECTION_STRING", "reference a secret of this account"),
    ("env-url-with-credentials", setv("service.environment.DB_URL", "postgres://u:p@host/db"),
     "service.environment.DB_URL", "put it in service.secrets"),
    ("env-password-key", setv("service.environment.PASSWORD", "hunter2"),
     "service.environment.PASSWORD", "move it to service.secrets"),
    ("env-password-assignment-value", setv("service.environment.X", "password=abc"),
     "service.environment.X", "put it in service.secrets"),
    ("env-aws-secret-key-shaped-value", setv("service.environment.SIGNING", SECRET_KEY_SHAPED),
     "service.environment.SIGNING", "AWS secret key"),
    ("env-aws-access-key-id-value", setv("service.environment.UPLOADER", "AKIAIOSFODNN7EXAMPLE"),
     "service.environment.UPLOADER", "access key id"),
    ("name-in-both-environment-and-secrets", setv("service.environment.CONNECTION_STRING", "x"),
     "service.secrets", "keep each name in one place"),
    ("extra-port-host-equals-host-port", setv("service.extra_ports", [{"container_port": 7777, "host_port": 10000}]),
     "service.extra_ports.0.host_port", "must differ from host_port"),
    ("extra-port-container-equals-container-port",
     setv("service.extra_ports", [{"container_port": 8080, "host_port": 10001}]),
     "service.extra_ports.0.container_port", "must differ from container_port"),
    ("extra-port-host-ephemeral", setv("service.extra_ports", [{"container_port": 7777, "host_port": 40001}]),
     "service.extra_ports.0.host_port", "1024 and 32767"),
    ("listener-port-collides-with-exposed-extra-port",
     lambda d: setv("nlb.listener_port", 10001)(
         setv("service.extra_ports", [{"container_port": 7777, "host_port": 10001, "expose": True}])(d)),
     "nlb.listener_port", "choose another"),
    ("health-check-path-without-slash", setv("service.health_check_path", "health"),
     "service.health_check_path", "starting with '/'"),
    ("stage-with-space", setv("api.stage", "my stage"), "api.stage", "expected something like prod"),
    ("sandbox-maybe", setv("sandbox", "maybe"), "sandbox", "true or false"),
    ("deployment-maximum-percent-300", setv("service.deployment", {"maximum_percent": 300}),
     "service.deployment.maximum_percent", "at most 200"),
    ("role-arn-other-account", setv("role_arn", f"arn:aws:iam::{OTHER_ACCOUNT}:role/deployer"),
     "role_arn", "use a role of account 123456789012"),
    ("yaml-not-a-mapping", raw("- environment\n- local\n"), "bad.yaml", "YAML mapping"),
    # one host-port rule everywhere: 80 was accepted while every other message said 1024-32767
    ("host-port-80-below-1024", setv("service.host_port", 80), "service.host_port", "between 1024 and 32767"),
    ("host-port-2375-docker-reserved", setv("service.host_port", 2375), "service.host_port", "reserved by the ECS"),
    ("extra-port-host-80", setv("service.extra_ports", [{"container_port": 7777, "host_port": 80}]),
     "service.extra_ports.0.host_port", "between 1024 and 32767"),
    ("extra-port-host-ssh-reserved", setv("service.extra_ports", [{"container_port": 7777, "host_port": 22}]),
     "service.extra_ports.0.host_port", "reserved by the ECS agent"),
    ("base-path-leading-slash", setv("api.base_path", "/orders"), "api.base_path", "drop the leading slash"),
    ("duplicate-top-level-key", lambda _d: (ROOT / "params/local.yaml").read_text() + "region: us-east-1\n",
     "region", "duplicate key: set on line 5 and again on line 29"),
    ("duplicate-nested-key", lambda _d: (ROOT / "params/local.yaml").read_text().replace(
        "  host_port: 10000\n", "  host_port: 10000\n  host_port: 10001\n"),
     "host_port", "duplicate key: set on line 16 and again on line 17"),
    ("yaml-syntax-error", raw("environment: local\nservice: [unclosed\n"), "bad.yaml", "not valid YAML"),
]
assert len(BAD_CASES) >= 30
assert len({case[0] for case in BAD_CASES}) == len(BAD_CASES)

# Representative cases that also run the real CLI in a fresh process (the exit-code contract).
SUBPROCESS_CASES = {
    "misspelled-top-level-key", "host-port-ephemeral", "secret-plain-password", "names-over-elb-32-char-limit",
    "account-id-unquoted-int", "yaml-syntax-error",
}


def write_bad(tmp_path: Path, mutation: Callable) -> Path:
    result = mutation(copy.deepcopy(LOCAL))
    path = tmp_path / "bad.yaml"
    path.write_text(result if isinstance(result, str) else yaml.safe_dump(result, sort_keys=False))
    return path


def offline_env(tmp_path: Path) -> dict[str, str]:
    """AWS pointed at a closed port with dummy credentials, runs recorded under tmp_path."""
    return {
        "AWS_ENDPOINT_URL": CLOSED_ENDPOINT,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-2",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_MAX_ATTEMPTS": "1",
        "RUNBOOK_RUNS_DIR": str(tmp_path / "runs"),
        "RUNBOOK_SANDBOX_FILE": str(tmp_path / "no-sandbox.json"),
    }


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """In-process: the offline env, and any attempt to reach AWS or start a sandbox fails the test."""
    for key, value in offline_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)

    def forbidden(*_args, **_kwargs):
        raise AssertionError("invalid parameters must be refused before any AWS call or sandbox start")

    monkeypatch.setattr(aws_mod, "connect", forbidden)
    monkeypatch.setattr(sandbox_link, "ensure_sandbox", forbidden)
    return tmp_path


def assert_refused(code: int, stderr: str, field: str, fix: str, runs: Path) -> None:
    assert code == 2, stderr
    assert stderr.startswith("error: "), stderr
    lines = [line.strip() for line in stderr.splitlines()]
    named = [line for line in lines if line.startswith(f"{field}: ") or (field == "bad.yaml" and "bad.yaml: " in line)]
    assert named, f"no line names {field!r}:\n{stderr}"
    assert any(fix in line for line in named), f"the line for {field!r} does not say {fix!r}:\n{stderr}"
    assert not runs.exists(), f"a run was recorded: {list(runs.rglob('*'))}"


@pytest.mark.parametrize(("mutation", "field", "fix"), [case[1:] for case in BAD_CASES],
                         ids=[case[0] for case in BAD_CASES])
def test_bad_params_refused_in_process(mutation, field, fix, offline, capsys):
    path = write_bad(offline, mutation)
    started = time.monotonic()
    code = cli.main(["plan", str(path)])
    elapsed = time.monotonic() - started
    out, err = capsys.readouterr()
    assert_refused(code, err, field, fix, offline / "runs")
    assert "invalid parameters" in err or "bad.yaml" in err
    assert out == ""
    assert elapsed < 2, f"validation took {elapsed:.1f}s"


@pytest.mark.parametrize(("mutation", "field", "fix"),
                         [case[1:] for case in BAD_CASES if case[0] in SUBPROCESS_CASES],
                         ids=[case[0] for case in BAD_CASES if case[0] in SUBPROCESS_CASES])
def test_bad_params_refused_by_real_cli(mutation, field, fix, tmp_path):
    path = write_bad(tmp_path, mutation)
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update(offline_env(tmp_path))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "vpclink_runbooks.cli", "plan", str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started
    assert_refused(proc.returncode, proc.stderr, field, fix, tmp_path / "runs")
    assert elapsed < 10, f"took {elapsed:.1f}s: network retries?"


def test_every_problem_is_reported_at_once(offline, capsys):
    data = copy.deepcopy(LOCAL)
    data["region"] = "europe"
    data["service"]["host_port"] = 40000
    data["api"]["stage"] = "my stage"
    path = offline / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert cli.main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    for field in ("region", "service.host_port", "api.stage"):
        assert f"  {field}: " in err


def test_cli_import_stays_light(tmp_path):
    """Parsing and validating must not pull boto3 or pandas (they cost most of a CLI start)."""
    code = ("import sys, vpclink_runbooks.cli, vpclink_runbooks.params; "
            "heavy = {'boto3', 'botocore', 'pandas', 'papermill'} & set(sys.modules); assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------------------------
# Protected environments


@pytest.mark.parametrize("confirm", [None, "prod", "prod@111122223333", "dev@777788889999"],
                         ids=["no-confirm", "env-only", "wrong-account", "wrong-env"])
def test_protected_apply_needs_confirm(confirm, offline, capsys):
    argv = ["apply", str(ROOT / "params" / "prod.yaml")] + (["--confirm", confirm] if confirm else [])
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "--confirm prod@777788889999" in err
    assert "Nothing was changed" in err
    assert not (offline / "runs").exists()


def test_check_protected_lets_reads_and_confirmed_applies_through():
    prod = load_params(ROOT / "params" / "prod.yaml")
    check_protected(prod, "plan", None)
    check_protected(prod, "verify", None)
    check_protected(prod, "apply", "prod@777788889999")
    check_protected(load_params(ROOT / "params" / "dev.yaml"), "apply", None)
    with pytest.raises(GuardRefused):
        check_protected(prod, "apply", None)


def test_duplicate_key_is_refused_when_a_notebook_merges_the_params_file(tmp_path):
    text = (ROOT / "params/local.yaml").read_text().replace("  stage: prod\n", "  stage: prod\n  stage: dev\n")
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    line = text.splitlines().index("  stage: dev") + 1
    for load in (load_raw, lambda f: merge_params(f, {})):
        with pytest.raises(ParamsError) as err:
            load(str(path))
        assert err.value.problems == [("stage", f"duplicate key: set on line {line - 1} and again on line {line} "
                                       f"of {path}; keep one (YAML would silently use the last)")]
