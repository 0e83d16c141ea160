"""docs/example_dag.py compiles and runs the same notebooks, modes and dependencies as `runbook apply`
(the project's venv has no Airflow: the file is read with ast; tests/test_airflow_real.py runs it on
real Airflow); its copy of the graph, the runner's and
repair's all equal the step registry (lib/steps/registry.py)."""

from __future__ import annotations

import ast
import py_compile

from vpclink_runbooks.run.runner import COMMANDS, NEEDS, NOTEBOOKS, notebooks_for
from vpclink_runbooks.run.schedule import NEEDS_CONVERGED
from vpclink_runbooks.steps import registry

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
    # a task is a whole notebook: what the runner starts once a step converged waits for all of it here
    assert _literal("NEEDS") == {nb: (*NEEDS_CONVERGED[nb], *NEEDS[nb]) for nb in NEEDS}
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


def test_the_dag_copy_equals_the_step_registry():
    apply = (registry.INSPECT, *registry.CHAIN, registry.VERIFY)
    assert [nb for nb, _ in _literal("STEPS")] == [step.notebook for step in apply]
    assert _literal("NEEDS") == registry.whole_needs_by_notebook(apply)
    assert [s.name for s in registry.CHAIN] == ["load_balancer", "vpc_link", "ecs_service", "api"]


def test_the_runner_derives_its_notebooks_from_the_registry():
    assert NEEDS == registry.needs_by_notebook((registry.INSPECT, *registry.CHAIN, registry.VERIFY))
    assert NEEDS_CONVERGED == registry.needs_converged_by_notebook((registry.INSPECT, *registry.CHAIN,
                                                                    registry.VERIFY))
    assert [nb for nb, _ in COMMANDS["plan"]] == [s.notebook for s in (registry.INSPECT, *registry.CHAIN)]
    assert notebooks_for("destroy", True) == [(registry.DESTROY.notebook, "apply")]
    assert notebooks_for("repair", False) == [(registry.VERIFY.notebook, "repair-plan")]
    # one step per notebook, in file-name order
    assert [s.notebook for s in registry.STEPS] == sorted(p.stem for p in NOTEBOOKS.glob("[0-9]*.ipynb"))
    for step in registry.STEPS:
        assert all(registry.STEPS.index(registry.step(n)) < registry.STEPS.index(step)
                   for n in (*step.needs, *step.needs_converged)), step


def test_repair_order_and_dependants_come_from_the_registry():
    from vpclink_runbooks import checks, repair

    assert repair.STEPS == ["nlb", "vpc_link", "ecs", "targets", "api"] == registry.repair_order()
    assert repair.DEPENDANTS == {"nlb": ["ecs", "api"], "vpc_link": ["api"]} == registry.repair_dependants()
    assert {owner for owner in checks.REPAIRED_BY.values() if owner} <= set(registry.repair_order())


def test_every_registered_converge_and_wait_names_a_function():
    for step in registry.STEPS:
        assert step.converge, step.name
        for ref in step.converge + step.wait:
            assert callable(registry.resolve(ref)), ref
    assert registry.BY_NOTEBOOK["30_ecs_service"].wait[-1].endswith(":wait_targets_healthy")


def test_the_registry_imports_nothing_of_the_package():
    import ast

    tree = ast.parse((ROOT / "lib" / "steps" / "registry.py").read_text())
    imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if m and m.startswith("vpclink_runbooks")], imported
