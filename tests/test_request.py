"""`runbook request` and verify's end-to-end probes: the URL a client builds for a real domain, the connect-to
override, a request through the sandbox's front after apply (the service's stand-in answers), API Gateway
answering instead (exit 1), run.json's `request`, and the target group's health-check settings that verify
names and repair sets back."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vpclink_runbooks import cli, request
from vpclink_runbooks.run.runner import run

from .conftest import ROOT, write_params

pytestmark = pytest.mark.notebooks

LOCAL = str(ROOT / "params" / "local.yaml")
DOMAIN = "api.example.com"


def test_url_for_a_real_domain():
    assert request.url_for("api.example.com", "orders") == "https://api.example.com/orders/"
    assert request.url_for("api.example.com", "orders", "/v1/items?x=1") == "https://api.example.com/orders/v1/items?x=1"
    assert request.url_for("api.example.com", "(none)", "health") == "https://api.example.com/health"


def test_connect_to_override_parsing_and_none_on_a_real_domain(monkeypatch, tmp_path):
    assert request.parse_connect_to(" api.example.com=http://127.0.0.1:9000/ , bad, other.example=https://h:1") == {
        "api.example.com": "http://127.0.0.1:9000", "other.example": "https://h:1"}
    # no override, no sandbox announced, no endpoint: DNS and HTTPS decide, as on AWS
    for key in ("AWS_ENDPOINT_URL", request.CONNECT_TO_ENV):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("RUNBOOK_SANDBOX_FILE", str(tmp_path / "none.json"))
    assert request.connect_to("api.example.com") is None
    monkeypatch.setenv(request.CONNECT_TO_ENV, "api.example.com=http://127.0.0.1:9")
    assert request.connect_to("API.example.com") == "http://127.0.0.1:9"
    assert request.connect_to("elsewhere.example.com") is None


@pytest.fixture(scope="module")
def applied(sandbox):
    result = run("apply", LOCAL)
    assert result.exit_code == 0, result.record.get("error")
    return sandbox


def test_runbook_request_reaches_the_service(applied, capsys):
    assert cli.main(["request", LOCAL, "items/1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "HTTP 200 OK"
    assert lines[1].startswith("latency: ") and "https://api.example.com/orders/items/1" in lines[1]
    assert lines[2].startswith("answered by: ") and lines[2] != "answered by: -"
    assert lines[3] == "decided at hop: service (the service)"


def test_runbook_request_finds_the_front_from_aws_endpoint_url_alone(applied, tmp_path):
    """A separate process with params `sandbox: false` and only AWS_ENDPOINT_URL (a shared sandbox)."""
    params = write_params(tmp_path, sandbox=False)
    env = {k: v for k, v in os.environ.items() if k != request.CONNECT_TO_ENV}
    env["RUNBOOK_SANDBOX_FILE"] = str(tmp_path / "none.json")
    command = [sys.executable, "-m", "vpclink_runbooks.cli", "request", str(params), "x", "--method", "POST"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    assert done.stdout.splitlines()[0] == "HTTP 200 OK"
    assert "via http://127.0.0.1:" in done.stdout


def test_runbook_request_exits_1_when_api_gateway_answers(applied, tmp_path, capsys):
    params = write_params(tmp_path, api__base_path="nothing-mapped")
    assert cli.main(["request", str(params)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("HTTP 403")
    assert lines[3].startswith("decided at hop: mapping (API Gateway (ForbiddenException")


def test_runbook_request_bad_params_exit_2(tmp_path, capsys):
    assert cli.main(["request", str(tmp_path / "missing.yaml")]) == 2


def test_verify_sends_the_request_and_records_it(applied):
    result = run("verify", LOCAL)
    assert result.exit_code == 0, [c for c in result.record["checks"] if c["status"] == "fail"]
    checks = {c["id"]: c for c in result.record["checks"]}
    assert checks["endpoint.test_invoke"]["status"] == "pass", checks["endpoint.test_invoke"]
    assert checks["endpoint.custom_domain"]["status"] == "pass", checks["endpoint.custom_domain"]
    assert checks["target_group.health_check"]["status"] == "pass"
    recorded = json.loads((result.run_dir / "run.json").read_text())["request"]
    assert recorded["url"] == "https://api.example.com/orders/runbook-probe"
    assert recorded["status"] == 200 and recorded["hop"] == "service" and recorded["answered_by"]
    assert isinstance(recorded["ms"], int)


def test_health_check_port_moved_is_named_and_repaired(applied):
    elbv2 = applied.session().client("elbv2")
    tg = next(t for t in elbv2.describe_target_groups()["TargetGroups"] if t["Port"] == 10000)
    elbv2.modify_target_group(TargetGroupArn=tg["TargetGroupArn"], HealthCheckPort="9999")

    result = run("verify", LOCAL)
    assert result.exit_code == 1
    checks = {c["id"]: c for c in result.record["checks"]}
    broken = checks["target_group.health_check"]
    assert broken["status"] == "fail" and broken["hop"] == "target_group"
    assert "Port 9999 (runbook sets traffic-port)" in broken["detail"], broken
    assert "repair" in broken["remedy"]

    repaired = run("repair", LOCAL, yes=True)
    assert repaired.exit_code == 0, [c for c in repaired.record["checks"] if c["status"] == "fail"]
    assert any(c["operation"] == "ModifyTargetGroup" for c in repaired.record["changes"]), repaired.record["changes"]
    after = elbv2.describe_target_groups(TargetGroupArns=[tg["TargetGroupArn"]])["TargetGroups"][0]
    assert after["HealthCheckPort"] == "traffic-port"
    again = {c["id"]: c for c in run("verify", LOCAL).record["checks"]}
    assert again["target_group.health_check"]["status"] == "pass"
    assert again["endpoint.custom_domain"]["status"] == "pass"
