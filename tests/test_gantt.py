"""benchmarks/gantt.py: the time line of a run from its record (each step's start and length) and its calls (the
waiters' polls form the dark wait spans), as an SVG."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from benchmarks import gantt


def _run_folder(tmp_path):
    record = {"run_id": "20261202T000000Z-abc", "command": "apply", "environment": "local", "steps": [
        {"notebook": "00_inspect.ipynb", "started_after": 0.0, "seconds": 2.0},
        {"notebook": "10_nlb.ipynb", "started_after": 2.0, "seconds": 20.0},
        {"notebook": "20_vpc_link.ipynb", "started_after": 22.0, "seconds": 25.0}]}
    calls = [{"time": 1000.0, "operation": "GetCallerIdentity"},
             {"time": 1003.0, "step": "10_nlb", "operation": "CreateLoadBalancer"},
             *({"time": 1004.0 + i, "step": "10_nlb", "wait": "load_balancer_available"} for i in range(16)),
             {"time": 1023.0, "step": "20_vpc_link", "operation": "CreateVpcLink"},
             *({"time": 1024.0 + 2 * i, "step": "20_vpc_link", "wait": "vpc_link_available"} for i in range(11))]
    (tmp_path / "run.json").write_text(json.dumps(record))
    (tmp_path / "calls.jsonl").write_text("".join(json.dumps(c) + "\n" for c in calls))
    return tmp_path


def test_steps_and_their_waits_on_one_time_line(tmp_path):
    rows = gantt.spans(_run_folder(tmp_path))
    assert [(r["step"], r["start"], r["end"]) for r in rows] == [
        ("00_inspect", 0.0, 2.0), ("10_nlb", 2.0, 22.0), ("20_vpc_link", 22.0, 47.0)]
    assert rows[0]["waits"] == []
    assert rows[1]["waits"] == [(4.0, 19.0, "load_balancer_available")]
    assert rows[2]["waits"] == [(24.0, 44.0, "vpc_link_available")]


def test_the_chart_is_an_svg_with_a_bar_per_step_and_per_wait(tmp_path):
    out = tmp_path / "gantt.svg"
    assert gantt.main([str(_run_folder(tmp_path)), str(out)]) == 0
    root = ET.fromstring(out.read_text())
    bars = root.findall("{http://www.w3.org/2000/svg}rect")
    assert len(bars) == 3 + 2
    assert "runbook apply local" in root.find("{http://www.w3.org/2000/svg}title").text


def test_a_step_that_says_when_it_converged_gets_a_marker_there(tmp_path):
    folder = _run_folder(tmp_path)
    record = json.loads((folder / "run.json").read_text())
    record["steps"][1]["converged_after"] = 4.5  # seconds from the run's start, like started_after (2.0 here)
    (folder / "run.json").write_text(json.dumps(record))
    rows = gantt.spans(folder)
    assert [r["converged"] for r in rows] == [None, 4.5, None]
    root = ET.fromstring(gantt.svg(rows, "t"))
    markers = root.findall("{http://www.w3.org/2000/svg}path")
    assert len(markers) == 1 and "converged at 4.5 s" in markers[0].find("{http://www.w3.org/2000/svg}title").text
