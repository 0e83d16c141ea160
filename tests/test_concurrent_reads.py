"""Independent reads go out side by side (aws/parallel.py): verify's fetch and inspect's discover overlap their
reads yet find exactly what reading one after another finds, a failure surfaces as it did, a wait's mark and the
final verify's freshness hold in the workers, and the run inventory sends a read two threads want at once once."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter

import pytest
from botocore.exceptions import ClientError

from vpclink_runbooks.aws import parallel
from vpclink_runbooks.aws import session as aws_mod
from vpclink_runbooks.checks import inventory as inventory_mod
from vpclink_runbooks.context import begin
from vpclink_runbooks.run.runner import run
from vpclink_runbooks.sandbox import profile as profile_mod
from vpclink_runbooks.steps import inspect as inspect_mod

from .conftest import ROOT, write_params
from .lifecycle import notebook

LOCAL = str(ROOT / "params" / "local.yaml")
LATENCY = 0.05  # seconds per call, as the AWS-like profile adds (80 ms there): calls in flight long enough to overlap


@pytest.fixture
def latency():
    """Every AWS call to the sandbox takes LATENCY (quotas 100x AWS's: never in the way)."""
    profile_mod.install(profile_mod.Profile(scale=0.01, latency=LATENCY))
    yield
    profile_mod.install(None)


def in_flight_at_most(calls: list[dict]) -> int:
    """The most calls in flight at one moment, from the recorder's send (started) and answer (time) times."""
    edges = sorted([(c["started"], 1) for c in calls] + [(c["time"], -1) for c in calls], key=lambda e: (e[0], e[1]))
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def answered(value):
    """A value as AWS answered it, without botocore's ResponseMetadata (request id, date: per call)."""
    if dataclasses.is_dataclass(value):
        return answered(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {k: answered(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [answered(v) for v in value]
    return value


def one_after_another(*calls, workers: int = parallel.MAX_WORKERS) -> list:
    return [call() for call in calls]


# ---- gather ----------------------------------------------------------------------------------------------------

def test_gather_returns_in_order_and_raises_the_first_failure_in_order_after_all_ran():
    second_failed = threading.Event()
    ran = []

    def first():
        second_failed.wait(5)  # fails after the second did
        ran.append("first")
        raise KeyError("first")

    def second():
        ran.append("second")
        second_failed.set()
        raise ValueError("second")

    def third():
        ran.append("third")
        return 3

    assert parallel.gather(lambda: 1, lambda: 2, third) == [1, 2, 3]
    ran.clear()
    with pytest.raises(KeyError, match="first"):
        parallel.gather(first, second, third)
    assert sorted(ran) == ["first", "second", "third"]


def test_an_aws_error_in_a_worker_reaches_the_caller_unchanged(sandbox):
    aws = aws_mod.Aws(sandbox.session(), aws_mod.CallRecorder())
    with pytest.raises(ClientError) as caught:
        parallel.gather(lambda: aws.ec2.describe_vpcs(),
                        lambda: aws.elbv2.describe_load_balancers(Names=["nobody-has-this-name"]))
    assert caught.value.response["Error"]["Code"] == "LoadBalancerNotFound"
    assert caught.value.operation_name == "DescribeLoadBalancers"


# ---- what the workers inherit -----------------------------------------------------------------------------------

def test_reads_of_a_wait_side_by_side_are_marked_as_its_polls(sandbox):
    aws = aws_mod.Aws(sandbox.session(), aws_mod.CallRecorder())
    with aws_mod.polling("services_stable"):
        parallel.gather(lambda: aws.ec2.describe_vpcs(), lambda: aws.ec2.describe_subnets())
    aws.ec2.describe_vpcs()
    assert [c.get("wait") for c in aws.recorder.calls[:2]] == ["services_stable"] * 2
    assert "wait" not in aws.recorder.calls[2]


def test_the_final_verify_freshness_holds_in_the_workers(sandbox, tmp_path):
    aws = notebook(sandbox, tmp_path, "50_verify")
    aws.ec2.describe_instances()
    parallel.gather(aws.ec2.describe_instances, aws.ec2.describe_instances)
    assert [c["operation"] for c in aws.recorder.calls] == ["DescribeInstances"]  # kept: answered
    with aws.inventory.fresh(seconds=0.0):  # what time changes, read again: once, however many threads ask
        parallel.gather(aws.ec2.describe_instances, aws.ec2.describe_instances, aws.ec2.describe_instances)
    assert [c["operation"] for c in aws.recorder.calls] == ["DescribeInstances"] * 2


# ---- one read for two threads --------------------------------------------------------------------------------------

def _held(aws: aws_mod.Aws, client: str, operation: str) -> tuple[threading.Event, threading.Event]:
    """(sent, release): `operation`'s first request, once sent, waits for `release` before it goes out."""
    sent, release = threading.Event(), threading.Event()

    def hold(**_):
        if not sent.is_set():
            sent.set()
            release.wait(10)

    meta = getattr(aws, client).meta
    meta.events.register(f"before-send.{meta.service_model.service_id.hyphenize()}.{operation}", hold)
    return sent, release


def _while_held(aws: aws_mod.Aws, client: str, operation: str, first, second) -> list:
    """`first` called in a thread and held on its way out; meanwhile `second`; the answers of both."""
    sent, release = _held(aws, client, operation)
    answers: dict[str, object] = {}
    first_thread = threading.Thread(target=lambda: answers.update(first=first()))
    first_thread.start()
    assert sent.wait(10)
    second_thread = threading.Thread(target=lambda: answers.update(second=second()))
    second_thread.start()
    second_thread.join(0.3)  # it waits for the first's answer (a slow machine may only ask after the release)
    release.set()
    first_thread.join(10)
    second_thread.join(10)
    return [answers.get("first"), answers.get("second")]


def test_a_read_another_thread_has_on_its_way_is_sent_once(sandbox, tmp_path):
    aws = notebook(sandbox, tmp_path, "50_verify")
    first, second = _while_held(aws, "elbv2", "DescribeTargetGroups", aws.elbv2.describe_target_groups,
                                aws.elbv2.describe_target_groups)
    assert first and second and first["TargetGroups"] == second["TargetGroups"]
    assert [c["operation"] for c in aws.recorder.calls] == ["DescribeTargetGroups"]


def test_a_read_by_name_waits_for_the_list_on_its_way_that_answers_it(sandbox, tmp_path):
    aws = notebook(sandbox, tmp_path, "50_verify")

    def by_name():
        try:
            return aws.elbv2.describe_load_balancers(Names=["nobody-has-this-name"])
        except ClientError as exc:
            return exc.response["Error"]["Code"]

    listed, named = _while_held(aws, "elbv2", "DescribeLoadBalancers", aws.elbv2.describe_load_balancers, by_name)
    assert "LoadBalancers" in listed
    assert named == "LoadBalancerNotFound"  # the complete list does not have it: AWS's own error, from the list
    assert [c["operation"] for c in aws.recorder.calls] == ["DescribeLoadBalancers"]


# ---- discover and fetch -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def applied(sandbox):
    result = run("apply", LOCAL)
    assert result.exit_code == 0, result.record.get("error")
    return result


def _fetched(tmp_path, monkeypatch) -> tuple[inventory_mod.Inventory, list[dict]]:
    """verify's fetch (no probes) as a notebook run alone makes it (no run inventory: every read is sent)."""
    monkeypatch.delenv(aws_mod.RUN_DIR_ENV, raising=False)
    monkeypatch.delenv(aws_mod.CALL_LOG_ENV, raising=False)
    ctx = begin("50_verify", {"params_file": str(write_params(tmp_path, sandbox=False)), "mode": "plan"})
    start = len(ctx.aws.recorder.calls)
    inv = inventory_mod.fetch(ctx, probe=False)
    return inv, ctx.aws.recorder.calls[start:]


@pytest.mark.notebooks
def test_fetch_reads_side_by_side_and_finds_what_reading_in_turn_finds(sandbox, applied, latency, tmp_path,
                                                                         monkeypatch):
    side_by_side, calls = _fetched(tmp_path, monkeypatch)
    with monkeypatch.context() as m:
        m.setattr(inventory_mod, "gather", one_after_another)
        m.setattr(inspect_mod, "gather", one_after_another)
        in_turn, calls_in_turn = _fetched(tmp_path, monkeypatch)
    assert in_flight_at_most(calls_in_turn) == 1  # the measure: one after another, nothing overlaps
    assert in_flight_at_most(calls) >= 3, sorted((c["started"], c["time"], c["operation"]) for c in calls)
    # the same reads, and the same inventory, field by field
    assert Counter((c["operation"], c["resource"]) for c in calls) == \
        Counter((c["operation"], c["resource"]) for c in calls_in_turn)
    assert side_by_side.lb and side_by_side.api and side_by_side.service and side_by_side.health
    for f in dataclasses.fields(inventory_mod.Inventory):
        assert answered(getattr(side_by_side, f.name)) == answered(getattr(in_turn, f.name)), f.name
    assert list(side_by_side.groups) == list(in_turn.groups) and list(side_by_side.health) == list(in_turn.health)
