"""The terminal summary over real run records (taken once from `runbook sequence local apply` and `destroy local`)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

from vpclink_runbooks.present import terminal

DATA = Path(__file__).parent / "data" / "terminal"


def _render(record: dict) -> str:
    return terminal.summary(SimpleNamespace(record=record, run_dir="runs/x/1"))


def _record(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def test_healthy_apply_fits_one_screen_with_verdict_first():
    out = _render(_record("apply.json")).splitlines()
    assert out[0].startswith("verdict: healthy")
    assert len(out) <= 40
    assert any(line.strip().startswith("... ") and "more" in line for line in out)


def test_failed_check_shows_full_detail_and_remedy_wrapped_not_cut():
    record = _record("apply.json")
    check = copy.deepcopy(record["checks"][5])
    check.update(status="fail", detail="x" * 150 + " END", remedy="start the instance " + "y" * 150 + " FIX")
    record["checks"].insert(0, check)
    text = _render(record)
    assert text.splitlines()[0].startswith(f"verdict: broken at {check['hop']}: {check['id']}")
    joined = text.replace("\n", "").replace(" ", "")
    assert "x" * 150 + "END" in joined and "y" * 150 + "FIX" in joined
    assert all(len(line) <= terminal.WIDTH for line in text.splitlines())


def test_destroy_without_yes_is_labelled_a_plan():
    text = _render(_record("destroy_plan.json"))
    assert "destroy plan local" in text
    assert "plan only, nothing changed; rerun with --yes to apply" in text
