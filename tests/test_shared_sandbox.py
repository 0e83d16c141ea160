"""`runbook sandbox` keeps one sandbox running; later commands find and share it (docs/sandbox.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.notebooks


def test_commands_find_the_running_sandbox(tmp_path):
    state = tmp_path / "sandbox.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(RUNBOOK_SANDBOX_FILE=str(state), RUNBOOK_RUNS_DIR=str(tmp_path / "runs"))
    server = subprocess.Popen([sys.executable, "-m", "vpclink_runbooks.cli", "sandbox", "local"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not state.exists() and time.monotonic() < deadline:
            assert server.poll() is None, server.stdout.read()
            time.sleep(0.2)
        announced = json.loads(state.read_text())
        plan = subprocess.run([sys.executable, "-m", "vpclink_runbooks.cli", "plan", "local"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        assert plan.returncode == 0, plan.stderr[-2000:]
        (record_path,) = (tmp_path / "runs" / "local").glob("*/run.json")
        record = json.loads(record_path.read_text())
        assert record["endpoint"] == announced["endpoint"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert not state.exists(), "a stopped sandbox withdraws its announcement"
