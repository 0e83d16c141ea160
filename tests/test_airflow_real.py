"""docs/example_dag.py runs on real Airflow (`make airflow`: .venv-airflow from requirements-airflow.lock) with
`airflow dags test`, against the sandbox: every task succeeds, the executed notebooks land where docs/airflow.md
says, and the chain verifies afterwards. Papermill in Airflow's venv starts this project's interpreter as the
`python3` kernel (a kernelspec on JUPYTER_PATH), as a worker would be set up."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vpclink_runbooks.cli import main

from .conftest import ROOT

pytestmark = pytest.mark.notebooks

AIRFLOW = ROOT / ".venv-airflow" / "bin" / "airflow"
DAG_ID = "vpclink_runbook_apply"
NOTEBOOKS = ["00_inspect", "10_nlb", "20_vpc_link", "30_ecs_service", "40_api", "50_verify"]


def _kernelspec(jupyter_path: Path) -> None:
    """A `python3` kernel that is this project's interpreter (with vpclink_runbooks), not Airflow's."""
    spec = jupyter_path / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "vpclink-runbooks", "language": "python"}))


def _airflow(args: list[str], env: dict, log: Path, timeout: int) -> subprocess.CompletedProcess:
    with log.open("w") as out:
        done = subprocess.run([str(AIRFLOW), *args], env=env, cwd=log.parent, stdout=out,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout)
    assert done.returncode == 0, f"airflow {' '.join(args)} exited {done.returncode}:\n{log.read_text()[-6000:]}"
    return done


def test_the_example_dag_applies_local_on_real_airflow(sandbox, tmp_path):
    if not AIRFLOW.exists():
        pytest.fail(f"{AIRFLOW} is missing: `make airflow` installs Airflow from requirements-airflow.lock")
    home, dags, jupyter = tmp_path / "airflow", tmp_path / "dags", tmp_path / "jupyter"
    home.mkdir()
    dags.mkdir()
    shutil.copy(ROOT / "docs" / "example_dag.py", dags / "example_dag.py")
    _kernelspec(jupyter)
    # Airflow's own interpreter cannot run the notebooks: only the kernelspec makes the tasks pass.
    assert subprocess.run([str(AIRFLOW.parent / "python"), "-c", "import vpclink_runbooks"],
                          capture_output=True).returncode != 0
    runs = Path(os.environ["RUNBOOK_RUNS_DIR"])  # the sandbox fixture's: nothing lands in the work tree
    env = dict(os.environ, AIRFLOW_HOME=str(home), AIRFLOW__CORE__DAGS_FOLDER=str(dags),
               AIRFLOW__CORE__LOAD_EXAMPLES="False", RUNBOOK_ROOT=str(ROOT), JUPYTER_PATH=str(jupyter))
    env.pop("VIRTUAL_ENV", None)
    timings = {}

    started = time.monotonic()
    _airflow(["db", "migrate"], env, tmp_path / "migrate.log", timeout=300)
    timings["db migrate"] = time.monotonic() - started

    started = time.monotonic()
    _airflow(["dags", "test", DAG_ID, "--conf", json.dumps({"env": "local"})], env, tmp_path / "dags-test.log",
             timeout=600)
    timings["dags test"] = time.monotonic() - started
    log = (tmp_path / "dags-test.log").read_text()

    with sqlite3.connect(home / "airflow.db") as db:
        (run_id, run_state), = db.execute("SELECT run_id, state FROM dag_run WHERE dag_id = ?", (DAG_ID,))
        states = dict(db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?",
                                 (DAG_ID, run_id)))
    print(f"dag run {run_id}: {run_state}; tasks: {states}")
    assert run_state == "success", log[-6000:]
    assert states == {notebook: "success" for notebook in NOTEBOOKS}, log[-6000:]

    output = runs / "local" / f"airflow-{run_id}"
    for notebook in NOTEBOOKS:
        executed = json.loads((output / f"{notebook}.ipynb").read_text())
        outputs = json.dumps([cell.get("outputs", []) for cell in executed["cells"]])
        assert '"output_type": "error"' not in outputs, notebook
        assert executed["metadata"]["papermill"]["parameters"]["params_file"] == f"{ROOT}/params/local.yaml"

    started = time.monotonic()
    assert main(["verify", str(ROOT / "params" / "local.yaml")]) == 0
    timings["verify"] = time.monotonic() - started
    print("timings: " + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in timings.items()))
