"""The notebooks as files: committed clean, parameterised, and runnable under nbval and papermill."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import nbformat
import papermill
import pytest

from vpclink_runbooks.run.runner import NOTEBOOKS
from vpclink_runbooks.run.runner import run as run_command

from .conftest import ROOT

pytestmark = pytest.mark.notebooks

NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_there_is_one_notebook_per_step():
    assert [p.stem for p in NOTEBOOK_FILES] == ["00_inspect", "10_nlb", "20_vpc_link", "30_ecs_service", "40_api",
                                                 "50_verify", "90_destroy"]


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_committed_without_outputs_and_with_a_parameters_cell(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "strip outputs before committing"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and 'mode = "plan"' in tagged[0].source
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


def test_nbval_lax_runs_every_notebook_against_the_sandbox(sandbox):
    """`pytest --nbval-lax notebooks/` as a user runs it, with the sandbox's endpoint exported."""
    run_command("apply", str(ROOT / "params" / "local.yaml"))  # so verify has a chain to read
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
                          str(NOTEBOOKS)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout.splitlines()[-1]


def test_waits_leave_a_finished_progress_line(sandbox, tmp_path):
    output = tmp_path / "10_nlb.ipynb"
    papermill.execute_notebook(str(NOTEBOOKS / "10_nlb.ipynb"), str(output), parameters={
        "params_file": str(ROOT / "params" / "local.yaml"), "mode": "apply"}, cwd=str(NOTEBOOKS), progress_bar=False)
    nb = json.loads(output.read_text())
    wait_cell = [c for c in nb["cells"] if c["cell_type"] == "code" and "wait_active" in "".join(c["source"])][0]
    shown = json.dumps(wait_cell["outputs"])
    assert "100%" in shown and " 0%" not in shown
