"""`runbook lab ENV` as a person has it, in headless Chromium: the lab opens ENV's working copies, Run All of one
notebook in apply mode takes the environment's lock and releases it, the saved copy is sealed as a `lab` run
record, and the tracked notebooks stay byte-identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest

from vpclink_runbooks.params import load_params
from vpclink_runbooks.run import audit
from vpclink_runbooks.run import lock as lock_mod
from vpclink_runbooks.run.kernels import NOTEBOOKS

from .chromium import browser, require_chromium, screenshot_path, wait_for_jupyter
from .conftest import ROOT
from .test_browser import _free_port, _run_all_cells

pytestmark = pytest.mark.notebooks
NAME = "10_nlb.ipynb"


def test_lab_apply_takes_and_releases_the_lock_and_seals_a_record(sandbox, tmp_path):
    require_chromium()
    params_file = ROOT / "params" / "local.yaml"
    params = load_params(params_file)
    runs = Path(os.environ["RUNBOOK_RUNS_DIR"])
    tracked = {p.name: p.read_bytes() for p in Path(NOTEBOOKS).glob("*.ipynb")}
    checkpoints = Path(NOTEBOOKS) / ".ipynb_checkpoints"
    checkpoints_before = sorted(checkpoints.iterdir()) if checkpoints.exists() else None
    token, port = uuid.uuid4().hex, _free_port()
    env = dict(os.environ, JUPYTER_TOKEN=token, JUPYTER_PORT=str(port))
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "vpclink_runbooks.cli", "lab", str(params_file)], env=env,
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_jupyter(base, token, proc, tmp_path / "lab.log")
        copy = runs / params.environment / "lab" / NAME
        nb = nbformat.read(copy, as_version=4)
        setup = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assert f"params_file = {str(params_file.resolve())!r}" in setup.source
        setup.source = setup.source.replace('mode = "plan"', 'mode = "apply"', 1)  # what the operator types
        nbformat.write(nb, copy)
        with browser() as context:
            context.set_default_timeout(60_000)
            page = context.new_page()
            try:
                page.goto(f"{base}/lab/workspaces/labtest/tree/{NAME}?reset&token={token}",
                          wait_until="domcontentloaded")
                _run_all_cells(page, sum(c.cell_type == "code" for c in nb.cells))
                errors = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output.jp-mod-error")
                assert errors.count() == 0, errors.all_inner_texts()
                # Sealed once the browser's autosave stores the final cell's output (post_save_hook). JupyterLab
                # stretches the autosave interval to 10x the last save's duration (SaveHandler), so on a loaded
                # machine a 3 s save puts the next one 30 s away: wait for more than a few of those.
                deadline = time.monotonic() + 120
                records = []
                while not records and time.monotonic() < deadline:
                    time.sleep(0.5)
                    found = [json.loads((p / "run.json").read_text()) for p in audit.run_dirs(runs, params.environment)]
                    records = [r for r in found if r["command"] == "lab"]
                page.screenshot(path=str(screenshot_path("lab-10_nlb-apply.png")))
            finally:
                page.close()
        assert len(records) == 1, (tmp_path / "lab.log").read_text()[-3000:]
        record = records[0]
        assert record["status"] == "succeeded" and record["steps"][0]["mode"] == "apply"
        assert record["lock"]["parameter"] == lock_mod.parameter_name(params.environment)  # it took the lock
        assert record["changes"], "apply made no recorded change"
        assert lock_mod.read(sandbox.session().client("ssm"), params.environment) is None  # and released it
        sealed = nbformat.read(runs / params.environment / record["run_id"] / NAME, as_version=4)
        assert any(c.get("outputs") for c in sealed.cells)  # the executed notebook with its outputs
        assert audit.verify(runs, params.environment) == []
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        log.close()
    assert {p.name: p.read_bytes() for p in Path(NOTEBOOKS).glob("*.ipynb")} == tracked
    assert (sorted(checkpoints.iterdir()) if checkpoints.exists() else None) == checkpoints_before
