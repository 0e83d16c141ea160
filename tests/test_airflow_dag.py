"""docs/example_dag.py compiles and runs the same notebooks, modes and dependencies as `runbook apply`
(Airflow itself is not installed here: the file is read with ast)."""

from __future__ import annotations

import ast
import py_compile

from vpclink_runbooks.run.runner import COMMANDS, NEEDS

from .conftest import ROOT

DAG_FILE = ROOT / "docs" / "example_dag.py"


def _literal(name: str):
    tree = ast.parse(DAG_FILE.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{DAG_FILE.name} has no {name} = ...")


def test_the_dag_file_compiles():
    py_compile.compile(str(DAG_FILE), doraise=True)


def test_the_dag_runs_apply_notebooks_in_the_runner_order():
    assert [tuple(step) for step in _literal("STEPS")] == COMMANDS["apply"]
    assert _literal("NEEDS") == NEEDS
    order = [nb for nb, _ in COMMANDS["apply"]]
    for notebook, needs in _literal("NEEDS").items():
        assert all(order.index(need) < order.index(notebook) for need in needs), notebook


def test_every_step_is_a_papermill_task_wired_by_needs():
    source = DAG_FILE.read_text()
    tree = ast.parse(source)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "PapermillOperator"]
    assert len(calls) == 1  # one operator per STEPS entry (a comprehension over STEPS)
    keywords = {k.arg for k in calls[0].keywords}
    assert {"task_id", "input_nb", "output_nb", "parameters", "kernel_name"} <= keywords
    assert "tasks[need] >> tasks[notebook]" in source
    assert any(isinstance(n, ast.ImportFrom) and n.module == "airflow.providers.papermill.operators.papermill"
               for n in tree.body)
