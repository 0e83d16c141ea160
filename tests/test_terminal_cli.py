"""Real `runbook` runs: a missing AWS profile is one clear error, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.notebooks
ROOT = Path(__file__).resolve().parents[1]


def test_missing_profile_is_one_clear_error_exit_2(tmp_path, monkeypatch):
    text = (ROOT / "params" / "local.yaml").read_text().replace("aws_profile: null", "aws_profile: nope-t16")
    params = tmp_path / "p.yaml"
    params.write_text(text)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    proc = subprocess.run([sys.executable, "-m", "vpclink_runbooks.cli", "verify", str(params)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert [line for line in proc.stderr.splitlines() if "nope-t16" in line] == [proc.stderr.strip()]
    assert proc.stderr.startswith("error: aws_profile:")
    assert "runner: ProfileNotFound" not in proc.stderr + proc.stdout
