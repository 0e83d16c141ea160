"""The step scheduler: each notebook starts once what it needs succeeded and what it needs converged ran its
converge cell (the cell tagged `converge`, reported by the papermill engine), a few at a time; the notebooks'
tags agree with the step registry."""

from __future__ import annotations

import json
import threading
import time

import pytest

from vpclink_runbooks.run import schedule
from vpclink_runbooks.run.runner import COMMANDS
from vpclink_runbooks.steps import registry

from .conftest import ROOT


def _cells(notebook: str) -> list[dict]:
    return [c for c in json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
            if c["cell_type"] == "code"]


@pytest.mark.parametrize("step", [s for s in registry.CHAIN], ids=lambda s: s.notebook)
def test_each_chain_notebook_tags_the_cell_that_runs_its_converge_before_its_waits(step):
    cells = _cells(step.notebook)
    tagged = [i for i, c in enumerate(cells) if registry.CONVERGE_TAG in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{step.notebook}: {len(tagged)} cells tagged {registry.CONVERGE_TAG!r}"
    converge = step.converge[-1].rpartition(":")[2]
    assert f".{converge}(" in "".join(cells[tagged[0]]["source"]), step.notebook
    for ref in step.wait:
        waits = [i for i, c in enumerate(cells) if f".{ref.rpartition(':')[2]}(" in "".join(c["source"])]
        assert waits and min(waits) > tagged[0], f"{step.notebook}: {ref} runs before the converge cell"


def test_every_step_a_step_needs_converged_has_a_converge_cell():
    needed = {n for s in registry.STEPS for n in s.needs_converged}
    assert needed == {"load_balancer", "vpc_link"}
    assert {registry.step(n) for n in needed} <= set(registry.CHAIN)


class FakeNotebooks:
    """Stands in for papermill (not for AWS): each notebook converges after `converge` s and ends after `end` s,
    or fails; records when each started and how many ran at once."""

    def __init__(self, timings: dict[str, tuple[float | None, float]], fail: str | None = None):
        self.timings, self.fail = timings, fail
        self.t0 = time.monotonic()
        self.started: dict[str, float] = {}
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()

    def __call__(self, notebook, mode, params_path, run_dir, log_output, pool=None, on_converged=None):
        with self.lock:
            self.started[notebook] = time.monotonic() - self.t0
            self.running += 1
            self.most = max(self.most, self.running)
        converge, end = self.timings[notebook]
        try:
            if converge is not None:
                time.sleep(converge)
                on_converged()
            time.sleep(end - (converge or 0))
            return ("failed", "StepFailed: boom") if notebook == self.fail else ("succeeded", "")
        finally:
            with self.lock:
                self.running -= 1


# (converged after, ended after) seconds: 10_nlb's wait outlasts 20's and 30's converges, 20_vpc_link's wait the
# others (40_api gets a slot when 10_nlb ends)
TIMINGS = {"00_inspect": (None, 0.1), "10_nlb": (0.1, 0.7), "20_vpc_link": (0.1, 1.2),
           "30_ecs_service": (0.1, 0.8), "40_api": (0.1, 0.2), "50_verify": (None, 0.1)}


def apply_with(fake: FakeNotebooks, width: int, monkeypatch, tmp_path) -> tuple[str, dict]:
    """apply's notebooks through the scheduler, `fake` standing in for papermill, `width` at once: (status, record)."""
    monkeypatch.setattr(schedule, "_execute", fake)
    monkeypatch.setattr(schedule, "PARALLEL_STEPS", width)
    record: dict = {}
    return schedule._run_steps(COMMANDS["apply"], tmp_path / "p.yaml", tmp_path, False, record, None), record


def test_steps_start_on_their_needs_converged_and_verify_after_all(monkeypatch, tmp_path):
    fake = FakeNotebooks(TIMINGS)
    status, record = apply_with(fake, 3, monkeypatch, tmp_path)
    assert status == "succeeded"
    s = {step["notebook"].removesuffix(".ipynb"): step for step in record["steps"]}
    end = {nb: step["started_after"] + step["seconds"] for nb, step in s.items()}
    assert [step["notebook"] for step in record["steps"]] == [f"{nb}.ipynb" for nb, _ in COMMANDS["apply"]]
    # 20 and 30 start when 10 converged (0.1 s in), long before 10 ends
    for nb in ("20_vpc_link", "30_ecs_service"):
        assert s["10_nlb"]["converged_after"] <= s[nb]["started_after"] < end["10_nlb"] - 0.3, nb
    assert s["20_vpc_link"]["converged_after"] <= s["40_api"]["started_after"] < end["20_vpc_link"] - 0.3
    assert s["50_verify"]["started_after"] >= max(end[nb] for nb in end if nb != "50_verify") - 0.02
    assert "converged_after" not in s["00_inspect"] and fake.most == 3


def test_no_more_than_the_width_run_at_once(monkeypatch, tmp_path):
    fake = FakeNotebooks(TIMINGS)
    status, record = apply_with(fake, 1, monkeypatch, tmp_path)
    assert status == "succeeded"
    assert fake.most == 1
    order = sorted(fake.started, key=fake.started.get)
    assert order == ["00_inspect", "10_nlb", "20_vpc_link", "30_ecs_service", "40_api", "50_verify"]


def test_a_failed_step_starts_nothing_new_and_is_recorded_last(monkeypatch, tmp_path):
    fake = FakeNotebooks(TIMINGS, fail="30_ecs_service")
    status, record = apply_with(fake, 3, monkeypatch, tmp_path)
    assert status == "failed"
    assert "50_verify" not in fake.started  # never started: 30 failed
    assert record["steps"][-1]["notebook"] == "30_ecs_service.ipynb" and record["error"].startswith("30_ecs_service")
    # what was running when 30 failed finished (20 and 40 had started; nothing after the failure did)
    assert {s["notebook"] for s in record["steps"]} == {f"{nb}.ipynb" for nb in fake.started}


@pytest.mark.notebooks
def test_the_engine_reports_a_converge_cell_once_it_ran_and_never_a_failed_one(tmp_path):
    import nbformat

    from vpclink_runbooks.run import engine
    from vpclink_runbooks.run.kernels import _import_papermill

    papermill = _import_papermill()

    def notebook(second: str):
        cells = [nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell(second),
                 nbformat.v4.new_code_cell("import time; time.sleep(0.5)")]
        cells[1].metadata["tags"] = [registry.CONVERGE_TAG, "other"]
        path = tmp_path / f"nb{len(list(tmp_path.iterdir()))}.ipynb"
        nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": {
            "name": "python3", "language": "python", "display_name": "Python 3"}}), path)
        return path

    seen: list[tuple[str, float]] = []
    t0 = time.monotonic()
    source = notebook("y = x + 1")
    papermill.execute_notebook(str(source), str(tmp_path / "out.ipynb"), kernel_name="python3",
                               progress_bar=False, engine_name=engine.ENGINE,
                               on_tagged_cell=lambda tag: seen.append((tag, time.monotonic() - t0)))
    total = time.monotonic() - t0
    assert [tag for tag, _ in seen] == [registry.CONVERGE_TAG]
    assert seen[0][1] < total - 0.4  # reported before the last cell's half second, not at the end
    seen.clear()
    with pytest.raises(papermill.PapermillExecutionError):
        papermill.execute_notebook(str(notebook("raise RuntimeError('no')")), str(tmp_path / "out2.ipynb"),
                                   kernel_name="python3", progress_bar=False, engine_name=engine.ENGINE,
                                   on_tagged_cell=lambda tag: seen.append((tag, 0.0)))
    assert seen == []
