"""The sandbox's AWS-like profile: per-call latency, scaled transition times, API Gateway's management quotas
(429 TooManyRequestsException), and the runbook surviving them with several processes of one account."""

from __future__ import annotations

import heapq
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import boto3
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError
from botocore.retries.standard import ExponentialBackoff

from vpclink_runbooks.aws import session as aws_mod
from vpclink_runbooks.sandbox import profile as profile_mod
from vpclink_runbooks.sandbox.profile import Profile, Quota, Throttle
from vpclink_runbooks.sandbox.server import Delays, start_sandbox

from .conftest import ROOT

pytestmark = pytest.mark.notebooks

NO_RETRIES = Config(retries={"mode": "standard", "max_attempts": 1})


@pytest.fixture
def aws_like():
    """An in-process sandbox with the profile at scale 1 (AWS's own quota periods) and no latency, so the quota
    tests count calls, not round trips."""
    box = start_sandbox(profile=Profile(scale=1.0, latency=0.0))
    yield box
    box.stop()
    profile_mod.install(None)  # the next module's sandbox starts fast whatever happens


def _client(box, service: str):
    return box.session().client(service, config=NO_RETRIES)


def test_a_throttled_call_answers_429_too_many_requests_as_api_gateway(aws_like):
    gw = _client(aws_like, "apigateway")
    gw.create_rest_api(name="first")
    with pytest.raises(ClientError) as caught:  # CreateRestApi: 1 call every 3 s per account
        gw.create_rest_api(name="second")
    err = caught.value.response
    assert err["Error"]["Code"] == "TooManyRequestsException"
    assert err["Error"]["Message"] == "Too Many Requests"
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 429
    headers = err["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-errortype"] == "TooManyRequestsException" and 1 <= int(headers["retry-after"]) <= 3
    assert isinstance(caught.value, gw.exceptions.TooManyRequestsException)  # boto3's modeled exception
    assert [api["name"] for api in gw.get_rest_apis()["items"]] == ["first"]  # refused before moto saw it
    # V2's DeleteVpcLink: 1 call every 30 s; the first is served, the second throttled.
    v2 = _client(aws_like, "apigatewayv2")
    v2.delete_vpc_link(VpcLinkId="abc123")
    with pytest.raises(v2.exceptions.TooManyRequestsException):
        v2.delete_vpc_link(VpcLinkId="abc123")
    # Other services have no such quota here.
    ecs = _client(aws_like, "ecs")
    for _ in range(5):
        ecs.list_clusters()


def test_get_resources_allows_5_calls_every_2_seconds(aws_like):
    gw = _client(aws_like, "apigateway")
    api = gw.create_rest_api(name="r")["id"]
    # Count what is served before the first 429; on a loaded machine the calls are slower and the bucket refills
    # meanwhile (2.5 calls a second), so the bound grows with the time the calls took, never the other way.
    started, served = time.monotonic(), 0
    with pytest.raises(gw.exceptions.TooManyRequestsException):
        for _ in range(100):
            gw.get_resources(restApiId=api)
            served += 1
    assert 5 <= served <= 5 + math.ceil((time.monotonic() - started) * 2.5), served
    time.sleep(0.45)  # 2.5 calls a second: one token back after 0.4 s
    gw.get_resources(restApiId=api)


def test_buckets_follow_the_documented_rates_scaled():
    # scale 0.01: DeleteRestApi 1 call per 0.3 s; the total 10 a second becomes 1000 a second, burst still 40
    throttle = Throttle(Profile(scale=0.01))
    assert throttle.check("111", "eu-west-2", "apigateway", "DeleteRestApi") == 0
    wait = throttle.check("111", "eu-west-2", "apigateway", "DeleteRestApi")
    assert 0.25 < wait <= 0.3
    assert throttle.check("222", "eu-west-2", "apigateway", "DeleteRestApi") == 0  # per account
    assert throttle.check("111", "us-east-1", "apigateway", "DeleteRestApi") == 0  # and per region
    time.sleep(wait)
    assert throttle.check("111", "eu-west-2", "apigateway", "DeleteRestApi") == 0
    total = Throttle(Profile(scale=1.0))
    assert all(total.check("1", "r", "apigateway", "GetRestApis") == 0 for _ in range(40))  # the burst of 40
    assert 0.05 < total.check("1", "r", "apigateway", "GetRestApis") <= 0.1  # then 10 a second
    assert Quota(1, 30).scaled(0.1) == Quota(1, 3.0)


def _destroys_side_by_side(callers: int, seed: int, max_attempts: int) -> float | None:
    """`callers` DeleteRestApi calls of one account starting within 2 s, each retried as botocore's standard mode
    retries a throttled call (its own backoff code), against the quota at scale 1 on a simulated clock: when the
    last one was served, or None if one ran out of attempts."""
    rng = random.Random(seed)
    clock = [0.0]
    throttle = Throttle(Profile(scale=1.0), clock=lambda: clock[0])
    backoff = ExponentialBackoff(random=rng.random, throttling_detector=SimpleNamespace(
        is_throttling_error_from_context=lambda _: True))
    attempts = [(rng.uniform(0, 2), caller, 1) for caller in range(callers)]
    heapq.heapify(attempts)
    served = 0.0
    while attempts:
        clock[0], caller, attempt = heapq.heappop(attempts)
        if throttle.check("1", "eu-west-2", "apigateway", "DeleteRestApi") == 0:
            served = clock[0]
        elif attempt == max_attempts:
            return None
        else:
            delay = backoff.delay_amount(SimpleNamespace(attempt_number=attempt, http_response=None))
            heapq.heappush(attempts, (clock[0] + delay, caller, attempt + 1))
    return served


def test_the_api_gateway_retry_budget_covers_the_slowest_quota_at_scale_1():
    budget = 41  # APIGATEWAY_RETRY_CONFIG: 40 retries (botocore rewrites its dict once a client uses it)
    # the old budget (10 retries, ~1 min of backoff): 4 destroys side by side never all got DeleteRestApi
    assert all(_destroys_side_by_side(4, seed, 11) is None for seed in range(50))
    for callers in (4, 8):  # 1 call per 30 s: the last of 4 is served after ~90-120 s, of 8 after ~4 min
        served = [_destroys_side_by_side(callers, seed, budget) for seed in range(200)]
        assert None not in served and max(served) > 30 * (callers - 1)
    assert aws_mod.RETRIES == 10  # the other services keep their budget


def test_scale_multiplies_the_delays_and_the_environment_selects_the_profile():
    assert Profile(scale=0.1).delays() == Delays(nlb_provisioning=15, vpc_link_pending=20, task_start=3,
                                                 target_healthy=10)
    assert profile_mod.from_env({}) is None
    chosen = profile_mod.from_env({"RUNBOOK_SANDBOX_PROFILE": "aws-like", "RUNBOOK_SANDBOX_SCALE": "0.1"})
    assert chosen.scale == 0.1 and chosen.latency == 0.08  # the latency is not scaled
    with pytest.raises(ValueError):
        profile_mod.from_env({"RUNBOOK_SANDBOX_PROFILE": "slow"})


def test_every_aws_call_takes_the_latency():
    try:
        for latency in (0.0, 0.08):
            with start_sandbox(profile=Profile(scale=0.01, latency=latency)) as box:
                sts = _client(box, "sts")
                sts.get_caller_identity()  # connection set up
                started = time.monotonic()
                for _ in range(10):
                    sts.get_caller_identity()
                took = time.monotonic() - started
            assert took >= 10 * latency and (latency or took < 0.8), (latency, took)
    finally:
        profile_mod.install(None)


def _start_cli_sandbox(tmp_path, env: dict, *args: str) -> tuple[subprocess.Popen, dict]:
    state = tmp_path / "sandbox.json"
    env.update(RUNBOOK_SANDBOX_FILE=str(state))
    server = subprocess.Popen([sys.executable, "-m", "vpclink_runbooks.cli", "sandbox", *args], cwd=ROOT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    deadline = time.monotonic() + 180  # a loaded 2-core machine took over 60 s to start a sandbox process
    while not state.exists():
        if server.poll() is not None or time.monotonic() > deadline:
            _stop(server)
            pytest.fail(f"the sandbox did not announce itself: {server.stdout.read()}")
        time.sleep(0.2)
    return server, json.loads(state.read_text())


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)


def test_runbook_sandbox_aws_like_flag(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RUNBOOK_"))}
    server, state = _start_cli_sandbox(tmp_path, env, "local", "--empty", "--aws-like", "--scale", "0.5")
    try:
        gw = boto3.Session(region_name=state["env"]["AWS_DEFAULT_REGION"]).client(
            "apigateway", endpoint_url=state["endpoint"], aws_access_key_id="testing",
            aws_secret_access_key="testing", config=NO_RETRIES)
        gw.get_rest_apis()  # moto loads its API Gateway backend on the first call (seconds)
        gw.create_rest_api(name="a")
        with pytest.raises(gw.exceptions.TooManyRequestsException):  # 1 call per 1.5 s at scale 0.5
            gw.create_rest_api(name="b")
    finally:
        _stop(server)
    assert "AWS-like profile: 80 ms a call, transitions and API Gateway quotas at scale 0.5" in server.stdout.read()


# ---- the must-show: 4 environments of one account applied and destroyed side by side under the quotas ------

SCALE = "0.05"  # DeleteRestApi 1 call per 1.5 s, CreateDeployment 1 per 0.25 s; NLB 9 s, VPC link 15 s


def _environments(tmp_path, count: int) -> list[str]:
    base = yaml.safe_load((ROOT / "params" / "local.yaml").read_text())
    paths = []
    for i in range(count):
        data = dict(base, environment=f"quota{i}")
        data["service"] = dict(base["service"], name=f"q{i}", host_port=base["service"]["host_port"] + 10 + i,
                               desired_count=1)
        data["api"] = dict(base["api"], base_path=f"q{i}")
        path = tmp_path / f"quota{i}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        paths.append(str(path))
    return paths


def _records(runs, environment: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((runs / environment).glob("*/run.json"))]


def test_four_environments_apply_and_destroy_side_by_side_under_the_quotas(tmp_path):
    runs = tmp_path / "runs"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RUNBOOK_"))}
    # The profile through the environment (as for any sandbox a process starts), seeded with local's world.
    env.update(RUNBOOK_RUNS_DIR=str(runs), RUNBOOK_SANDBOX_PROFILE="aws-like", RUNBOOK_SANDBOX_SCALE=SCALE)
    server, state = _start_cli_sandbox(tmp_path, env, "local")
    # The runs pace by the sandbox's scaled quotas, sharing one budget (aws/pacing.py).
    env.update(RUNBOOK_QUOTA_SCALE=SCALE, RUNBOOK_PACE_DIR=str(tmp_path / "pace"))
    try:
        # The runs find it only through AWS_ENDPOINT_URL, as tools sharing an account's sandbox do.
        env.update(state["env"])
        env["RUNBOOK_SANDBOX_FILE"] = str(tmp_path / "none.json")
        paths = _environments(tmp_path, 4)
        cli = [sys.executable, "-m", "vpclink_runbooks.cli"]
        applied = subprocess.run([*cli, "apply", *paths, "--parallel", "4"], cwd=ROOT, env=env,
                                 capture_output=True, text=True, timeout=240)
        assert applied.returncode == 0, (applied.stdout + applied.stderr)[-4000:]

        destroyed = subprocess.run([*cli, "destroy", *paths, "--yes", "--parallel", "4"], cwd=ROOT, env=env,
                                   capture_output=True, text=True, timeout=240)
        assert destroyed.returncode == 0, (destroyed.stdout + destroyed.stderr)[-4000:]
        assert "4 of 4 environment(s) destroyed" in destroyed.stdout
    finally:
        _stop(server)
    records = [r for i in range(4) for r in _records(runs, f"quota{i}")]
    assert sorted((r["command"], r["status"]) for r in records) == [("apply", "succeeded")] * 4 + [
        ("destroy", "succeeded")] * 4
    for r in records:
        calls = r["api_calls"]
        assert calls["total"] > 0 and 0 < calls["mutating"] <= calls["total"]
        assert calls["retried"] >= calls["throttled"]  # the runs succeeded: every throttled answer was retried
    # Paced by one shared budget, no call of the batch met the quota: a throttled answer is a lost round trip and a
    # backoff of seconds (tests/test_pacing.py shows unpaced clients being throttled by this sandbox).
    assert sum(r["api_calls"]["throttled"] for r in records) == 0, [r["api_calls"] for r in records]
