"""Every notebook's parameters cell declares exactly the names context.begin reads: mode, params_file and the
params' top-level keys (context.PARAM_KEYS), each key left at None so that only what papermill injects
overrides the params file."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from vpclink_runbooks import context
from vpclink_runbooks.params import Params

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("*.ipynb"))


def parameters_cell(path: Path) -> str:
    cells = [c for c in json.loads(path.read_text())["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path.name}: {len(cells)} cells tagged 'parameters', want exactly one"
    assert cells[0]["cell_type"] == "code", f"{path.name}: the parameters cell is not a code cell"
    return "".join(cells[0]["source"])


def assignments(source: str) -> dict[str, ast.expr]:
    """name -> value of each top-level `name = value`; anything else in the cell is refused."""
    found: dict[str, ast.expr] = {}
    for node in ast.parse(source).body:
        assert isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name), \
            f"only plain `name = value` lines belong in a parameters cell, not {ast.unparse(node)!r}"
        name = node.targets[0].id
        assert name not in found, f"{name} is assigned twice"
        found[name] = node.value
    return found


def test_param_keys_are_the_params_top_level_keys():
    aliases = {"load_balancer"}  # nlb's newer name (validation_alias), accepted in a params file
    assert set(context.PARAM_KEYS) == set(Params.model_fields) | aliases
    assert len(context.PARAM_KEYS) == len(set(context.PARAM_KEYS))


def test_there_is_a_notebook_per_step():
    assert [p.stem for p in NOTEBOOK_FILES] == ["00_inspect", "10_nlb", "20_vpc_link", "30_ecs_service", "40_api",
                                                "50_verify", "90_destroy"]


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_parameters_cell_defines_exactly_the_context_parameter_names(path):
    values = assignments(parameters_cell(path))
    assert list(values) == ["mode", "params_file", *context.PARAM_KEYS]
    mode = ast.literal_eval(values["mode"])
    assert mode in context.MODES and mode == "plan", "a notebook run without parameters only plans"
    assert isinstance(ast.literal_eval(values["params_file"]), str)
    not_none = [k for k in context.PARAM_KEYS if ast.literal_eval(values[k]) is not None]
    assert not not_none, f"{not_none} must default to None (merge_params skips None: the params file wins)"


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda p: p.stem)
def test_the_notebook_passes_its_namespace_to_context_begin(path):
    code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    calls = [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Call) and ast.unparse(n.func).endswith("begin")]
    assert len(calls) == 1, f"{path.name}: expected one begin(...) call"
    args = [ast.unparse(a) for a in calls[0].args]
    assert args == [repr(path.stem), "globals()"], args
