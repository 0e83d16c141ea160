"""Every notebook runs directly with the papermill CLI, as README.md (Notebooks) shows, against a running sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vpclink_runbooks.run.runner import NOTEBOOKS, run

from .conftest import ROOT

pytestmark = pytest.mark.notebooks


def test_papermill_cli_applies_each_notebook_in_order_and_the_chain_verifies(sandbox, tmp_path):
    params = ROOT / "params" / "local.yaml"
    for name in ("00_inspect", "10_nlb", "20_vpc_link", "30_ecs_service", "40_api", "50_verify"):
        output = tmp_path / f"{name}.ipynb"
        out = subprocess.run([sys.executable, "-m", "papermill", str(NOTEBOOKS / f"{name}.ipynb"), str(output),
                              "-f", str(params), "-p", "mode", "apply", "--cwd", str(NOTEBOOKS)],
                             cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, f"{name}: {out.stderr[-3000:]}"
        outputs = json.dumps([c.get("outputs", []) for c in json.loads(output.read_text())["cells"]])
        assert '"error"' not in outputs
    verified = run("verify", str(params))
    record = json.loads((verified.run_dir / "run.json").read_text())
    assert verified.exit_code == 0, [c for c in record["checks"] if c["status"] == "fail"]
    assert record["changes"] == []
