"""Several environments in one command (`runbook apply|destroy ENV1 ENV2 ... --parallel N`): every params file
is validated before any process starts or any AWS call is made, and an environment named twice is refused.
(The batch itself, under the AWS-like profile's quotas, is tests/test_profile.py's.)"""

from __future__ import annotations

import pytest

from vpclink_runbooks.cli import main
from vpclink_runbooks.run import runner

from .conftest import ROOT, write_params

LOCAL = str(ROOT / "params" / "local.yaml")


@pytest.mark.parametrize("command", [["apply"], ["destroy", "--yes"]])
def test_a_bad_params_file_refuses_the_batch_before_anything_runs(tmp_path, monkeypatch, capsys, command):
    started = []
    monkeypatch.setattr(runner.subprocess, "run", lambda *a, **k: started.append(a))  # a process would start
    bad = write_params(tmp_path, service__host_port=80)
    assert main([command[0], LOCAL, str(bad), *command[1:], "--parallel", "2"]) == 2
    assert "service.host_port" in capsys.readouterr().err and started == []


@pytest.mark.parametrize("command", ["apply", "destroy"])
def test_an_environment_given_twice_is_refused(monkeypatch, capsys, command):
    started = []
    monkeypatch.setattr(runner.subprocess, "run", lambda *a, **k: started.append(a))
    assert main([command, LOCAL, LOCAL, "--parallel", "2"]) == 2
    assert "given twice" in capsys.readouterr().err and started == []
