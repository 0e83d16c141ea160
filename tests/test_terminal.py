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


def test_nothing_applied_says_run_apply_and_that_the_sandbox_is_fresh():
    # a real verify on a sandbox that started with the command (none of the runbook's resources exist)
    record = _record("verify_fresh.json")
    first = _render(record).splitlines()[0]
    assert first.startswith("verdict: not applied yet") and "runbook apply local" in first
    assert "fresh sandbox" in _render(record)
    # one of the runbook's resources exists: the first broken hop again, with its remedy
    record["checks"] = [dict(c, status="pass") if c["id"] == "nlb.exists" else c for c in record["checks"]]
    lines = _render(record).splitlines()
    assert lines[0].startswith("verdict: broken at mapping: mapping.exists") and lines[1].startswith("  remedy: ")


def test_skipped_checks_are_counted_not_listed():
    text = _render(_record("verify_fresh.json"))
    skipped = [c for c in _record("verify_fresh.json")["checks"] if c["status"] == "skip"]
    assert skipped and f"{len(skipped)} skipped" in text
    assert not any("check skip" in line for line in text.splitlines())


def test_a_repair_plan_labels_its_rows_and_says_why_it_exits_1():
    record = _record("verify_fresh.json")
    record.update(command="repair", plan_only=True, status="failed")
    record["plan"].append({"resource": "instance i-0abc", "action": "none", "current": "stopped",
                           "desired": "running", "why": "start the instance i-0abc (not the runbook's)"})
    text = _render(record)
    assert "repair plan local: FAILED" in text and "plan only, nothing changed; rerun with --yes to apply" in text
    assert "  repair plan: " in text and "exit 1: the chain is still broken" in text
    assert "not the runbook's to change: instance i-0abc: start the instance i-0abc" in text
