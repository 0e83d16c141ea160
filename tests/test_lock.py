"""One writer per environment: the lock in SSM Parameter Store, over HTTP against the sandbox."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest

from vpclink_runbooks.cli import main
from vpclink_runbooks.params import load_params
from vpclink_runbooks.run import lock
from vpclink_runbooks.run.runner import run

from .lifecycle import LOCAL, LOCK_PARAMETER, counts, kill, record, start, wait_for

pytestmark = pytest.mark.notebooks

FOREIGN = {"holder": "arn:aws:sts::123456789012:assumed-role/platform/alice", "host": "alice-laptop", "pid": 4242,
           "run_id": "20261129T090000Z-abcdef", "command": "apply", "since": "2026-11-29T09:00:00+00:00"}


@pytest.fixture(scope="module")
def ssm(sandbox):
    return sandbox.session().client("ssm")


@pytest.fixture(scope="module")
def params(sandbox):
    return load_params(LOCAL)


def test_put_parameter_without_overwrite_is_create_if_absent(ssm, params):
    """What the lock relies on, checked on the emulator over HTTP: the second create is refused."""
    first = lock.acquire(ssm, params, caller_arn="arn:one", run_id="run-1", command="apply", env_arg="local")
    with pytest.raises(lock.LockHeld) as refused:
        lock.acquire(ssm, params, caller_arn="arn:two", run_id="run-2", command="apply", env_arg="local")
    message = str(refused.value)
    assert "apply run run-1 by arn:one" in message and "since " in message
    assert "runbook unlock local --force" in message and "Nothing was changed" in message
    tags = ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId=LOCK_PARAMETER)["TagList"]
    assert {"Key": "runbook:managed-by", "Value": "vpclink-runbooks"} in tags
    assert first.release() is True
    assert lock.read(ssm, "local") is None


def test_release_leaves_a_lock_that_is_no_longer_ours(ssm, params):
    mine = lock.acquire(ssm, params, caller_arn="arn:one", run_id="run-1", command="apply", env_arg="local")
    lock.break_lock(ssm, "local")
    theirs = lock.acquire(ssm, params, caller_arn="arn:two", run_id="run-2", command="destroy", env_arg="local")
    assert mine.release() is False
    assert lock.read(ssm, "local")["run_id"] == "run-2"
    assert theirs.release() is True


def test_a_lock_left_by_a_dead_process_on_this_host_is_taken_over(ssm, params):
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = {**FOREIGN, "host": socket.gethostname(), "pid": dead.pid}
    ssm.put_parameter(Name=LOCK_PARAMETER, Value=json.dumps(stale), Type="String", Overwrite=False)
    taken = lock.acquire(ssm, params, caller_arn="arn:one", run_id="run-3", command="apply", env_arg="local")
    assert taken.took_over == stale
    assert taken.release() is True


def test_two_concurrent_applies_exactly_one_proceeds(sandbox):
    first, second = start("apply", LOCAL), start("apply", LOCAL)
    outputs = {}
    for proc in (first, second):
        try:
            out, _ = proc.communicate(timeout=400)
        except subprocess.TimeoutExpired as exc:  # say what the stuck run printed (a refused run must exit)
            kill(proc)
            pytest.fail(f"a runbook apply did not exit in 400 s; it printed:\n{exc.output}")
        outputs[proc.returncode] = out
    assert sorted(outputs) == [0, 2], outputs
    refused = outputs[2]
    assert "local is locked by apply run" in refused and "on host " in refused and " since " in refused
    assert "runbook unlock" in refused and "REFUSED" in refused
    assert counts(sandbox) == {"load_balancers": 1, "target_groups": 1, "vpc_links": 1, "rest_apis": 1,
                               "ecs_services": 1, "task_definitions": 1, "security_group_rules": 1, "lock": 0}


def test_destroy_is_refused_while_an_apply_holds_the_lock(sandbox, ssm):
    applying = start("apply", LOCAL)
    try:
        wait_for(lambda: lock.read(ssm, "local") is not None, applying, what="the apply to take the lock")
        before = counts(sandbox)
        result = run("destroy", LOCAL, yes=True)
        rec = record(result)
        assert result.exit_code == 2 and rec["status"] == "refused"
        assert "local is locked by apply run" in rec["error"] and rec["steps"] == [] and rec["changes"] == []
        assert counts(sandbox) == before
        out, _ = applying.communicate(timeout=400)
        assert applying.returncode == 0, out[-3000:]
    finally:
        if applying.poll() is None:
            kill(applying)
    assert counts(sandbox)["lock"] == 0


def test_a_stale_lock_from_another_machine_refuses_until_broken_with_unlock_force(sandbox, ssm, capsys):
    ssm.put_parameter(Name=LOCK_PARAMETER, Value=json.dumps(FOREIGN), Type="String", Overwrite=False)
    result = run("destroy", LOCAL, yes=True)
    rec = record(result)
    assert result.exit_code == 2 and rec["status"] == "refused" and rec["changes"] == []
    assert ("local is locked by apply run 20261129T090000Z-abcdef by arn:aws:sts::123456789012:assumed-role/"
            "platform/alice on host alice-laptop (pid 4242) since 2026-11-29T09:00:00+00:00") in rec["error"]
    capsys.readouterr()
    assert main(["unlock", LOCAL]) == 2
    shown = capsys.readouterr()
    assert "alice-laptop" in shown.out and "--force" in shown.err
    assert lock.read(ssm, "local") == FOREIGN
    assert main(["unlock", LOCAL, "--force"]) == 0
    assert "lock broken" in capsys.readouterr().out
    assert lock.read(ssm, "local") is None
    assert main(["unlock", LOCAL]) == 0
    # the lock is free again: the destroy now runs
    result = run("destroy", LOCAL, yes=True)
    assert result.exit_code == 0, record(result).get("error")
    assert set(counts(sandbox).values()) == {0}


def test_unlock_says_when_the_holders_process_is_gone_from_this_host(sandbox, ssm, capsys):
    dead = subprocess.Popen(["true"])
    dead.wait()
    for holder, gone in (({**FOREIGN, "host": socket.gethostname(), "pid": dead.pid}, True), (FOREIGN, False)):
        ssm.put_parameter(Name=LOCK_PARAMETER, Value=json.dumps(holder), Type="String", Overwrite=True)
        capsys.readouterr()
        assert main(["unlock", LOCAL]) == 2  # shown, not broken
        out = capsys.readouterr().out
        assert (f"its process (pid {holder['pid']}) is gone from this host" in out) is gone, out
        assert lock.read(ssm, "local") == holder
    assert main(["unlock", LOCAL, "--force"]) == 0
