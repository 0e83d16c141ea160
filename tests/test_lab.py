"""`runbook lab ENV` without a browser: working copies with ENV's params, the lab kernels' lock (taken by the
kernel, taken over from a dead kernel, refused to a second holder), the sealed lab record, and SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from vpclink_runbooks.params import load_params
from vpclink_runbooks.run import audit, lab
from vpclink_runbooks.run import lock as lock_mod
from vpclink_runbooks.run.kernels import NOTEBOOKS

from .conftest import ROOT, write_params

pytestmark = pytest.mark.notebooks

KERNEL = """
import sys, time
from vpclink_runbooks.context import begin, finish
try:
    ctx = begin("10_nlb", {"mode": "apply", "params_file": sys.argv[1]})
except Exception as exc:
    print("REFUSED", exc, flush=True)
    sys.exit(2)
print("HOLDING", flush=True)
if sys.argv[2] == "finish":
    finish(ctx)
    sys.exit(0)
time.sleep(600)
"""


def _tracked() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in Path(NOTEBOOKS).glob("*.ipynb")}


def test_working_copies_hold_the_env_params_file(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNBOOK_RUNS_DIR", str(tmp_path / "runs"))
    params_file = write_params(tmp_path, environment="stage-eu", region="eu-west-1")
    before = _tracked()
    directory = lab.make_working_copies(params_file.resolve(), "stage-eu")
    assert directory == tmp_path / "runs" / "stage-eu" / "lab"
    assert sorted(p.name for p in directory.glob("*.ipynb")) == sorted(before)
    for copy in directory.glob("*.ipynb"):
        cell = next(c for c in nbformat.read(copy, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
        assert f"params_file = {str(params_file.resolve())!r}" in cell.source
        assert "local.yaml" not in cell.source
    assert _tracked() == before  # the tracked notebooks are untouched


def _kernel(params_file: Path, env: dict, then: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", KERNEL, str(params_file), then], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc


def _first_line(proc: subprocess.Popen) -> str:
    line = proc.stdout.readline()
    while line and not line.startswith(("HOLDING", "REFUSED")):
        line = proc.stdout.readline()
    return line


def test_lab_kernel_lock_refused_taken_over_released_and_sealed(sandbox, tmp_path):
    params_file = write_params(tmp_path, environment="lab-lock")
    params = load_params(params_file)
    ssm = sandbox.session().client("ssm")
    runs = Path(os.environ["RUNBOOK_RUNS_DIR"])
    directory = lab.make_working_copies(params_file, params.environment)
    env = dict(os.environ, **{lab.LAB_DIR_ENV: str(directory)})
    env.pop("RUNBOOK_RUN_DIR", None)
    first = _kernel(params_file, env, "hold")
    try:
        assert _first_line(first).startswith("HOLDING")
        holder = lock_mod.read(ssm, params.environment)
        assert holder["pid"] == first.pid and holder["command"] == "lab"  # the kernel's pid holds it
        second = _kernel(params_file, env, "finish")
        line = _first_line(second)
        second.wait(60)
        assert line.startswith("REFUSED") and f"pid {first.pid}" in line and holder["run_id"] in line
    finally:
        first.kill()
        first.wait()
    third = _kernel(params_file, env, "finish")
    out = third.communicate(timeout=120)[0]
    assert third.returncode == 0, out
    assert "took over a stale lock" in out and f"pid {first.pid}" in out
    assert lock_mod.read(ssm, params.environment) is None  # finish released it
    run_id = re.search(r"lab run (\S+) finished", out).group(1)
    # The browser saves the working copy with the final cell's output: the post_save_hook seals the record.
    copy = directory / "10_nlb.ipynb"
    nb = nbformat.read(copy, as_version=4)
    nb.cells[-1].outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"lab run {run_id} finished\n")]
    nbformat.write(nb, copy)
    os.environ[lab.LAB_DIR_ENV] = str(directory)
    try:
        lab.post_save_hook(os_path=str(copy))
    finally:
        os.environ.pop(lab.LAB_DIR_ENV)
    record = json.loads((runs / params.environment / run_id / "run.json").read_text())
    assert record["command"] == "lab" and record["status"] == "succeeded"
    assert record["caller_arn"] and record["account"] == params.account_id
    assert record["host"] == socket.gethostname() and record["endpoint_kind"] in ("sandbox", "custom")
    assert record["lock"]["took_over"]["pid"] == first.pid
    assert (runs / params.environment / run_id / "10_nlb.ipynb").read_bytes() == copy.read_bytes()
    assert audit.verify(runs, params.environment) == []
    # The killed kernel's session is sealed as interrupted when the lab stops.
    sealed = lab.seal_leftovers(directory)
    assert [json.loads((p / "run.json").read_text())["status"] for p in sealed] == ["interrupted"]
    assert not any(p.name == "lab" and (p / "run.json").exists() for p in (runs / params.environment).iterdir())


def test_sigterm_stops_jupyterlab_and_its_kernels(tmp_path):
    env = dict(os.environ, RUNBOOK_RUNS_DIR=str(tmp_path / "runs"),
               RUNBOOK_SANDBOX_FILE=str(tmp_path / "sandbox.json"))
    params_file = write_params(tmp_path, environment="lab-term")
    log = open(tmp_path / "lab.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "vpclink_runbooks.cli", "lab", str(params_file),
                             ], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 90
        url = None
        while time.monotonic() < deadline and url is None:
            time.sleep(1)
            found = re.search(r"(http://127\.0\.0\.1:\d+)/lab\S*token=([0-9a-f]+)", (tmp_path / "lab.log").read_text())
            url = found and found.groups()
        assert url, (tmp_path / "lab.log").read_text()
        import urllib.request

        request = urllib.request.Request(f"{url[0]}/api/kernels", data=b'{"name": "python3"}', method="POST",
                                         headers={"Authorization": f"token {url[1]}"})
        urllib.request.urlopen(request, timeout=30).read()
        time.sleep(3)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("ipykernel_launcher" in " ".join(c.cmdline()) for c in children)
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert alive == []
        assert "Kernel is running over TCP" not in (tmp_path / "lab.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
