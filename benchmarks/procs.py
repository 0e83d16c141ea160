"""The benchmarks' processes: a fresh sandbox per measurement, a timed command (wall, CPU, memory), its run record."""

from __future__ import annotations

import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RUNBOOK = str(BIN / "runbook")
PYTHON = sys.executable
REFERENCE = str(ROOT / "benchmarks" / "reference.py")
SANDBOX_PROC = str(ROOT / "benchmarks" / "sandbox_proc.py")
# a sandbox's profile comes from its command line only; a user's settings would change what is measured
SCRUBBED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "RUNBOOK_SANDBOX_PROFILE", "RUNBOOK_SANDBOX_SCALE",
            "RUNBOOK_QUOTA_SCALE", "RUNBOOK_PACE", "RUNBOOK_PACE_DIR", "RUNBOOK_PARALLEL_STEPS",
            "RUNBOOK_FRESH_KERNELS")


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in SCRUBBED}


class Sandbox:
    """A fresh seeded emulator in its own process; `env` points the commands at it.

    aws_like: the sandbox's AWS-like profile at `scale` (latency, delays, quotas), and the runbook paces by the
    same scaled quotas with one budget (RUNBOOK_PACE_DIR) for every process that uses this sandbox. Plain: no
    profile and no pacing (the plain sandbox has no quotas; pacing would only add waits)."""

    def __init__(self, params: Path, workdir: Path, aws_like: bool = False, scale: float = 1.0):
        self.dir = Path(tempfile.mkdtemp(dir=workdir, prefix="sandbox-"))
        self.state = self.dir / "sandbox.json"
        command = [PYTHON, SANDBOX_PROC, str(self.state), str(params)]
        command += ["--aws-like", "--scale", repr(scale)] if aws_like else []
        self.proc = subprocess.Popen(command, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        deadline = time.monotonic() + 120
        while not self.state.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the benchmark sandbox did not start: {self.proc.stderr.read()[-2000:]}")
            time.sleep(0.05)
        state = json.loads(self.state.read_text())
        self.runs_dir = self.dir / "runs"
        pacing = ({"RUNBOOK_QUOTA_SCALE": repr(scale), "RUNBOOK_PACE_DIR": str(self.dir / "pace")} if aws_like
                  else {"RUNBOOK_PACE": "off"})
        self.env = {**clean_env(), **state["env"], "RUNBOOK_RUNS_DIR": str(self.runs_dir),
                    # never find another (user's) announced sandbox
                    "RUNBOOK_SANDBOX_FILE": str(self.dir / "none.json"), **pacing}

    def cpu_seconds(self) -> float:
        """User + system CPU the emulator's process has used so far (it shares the cores with the commands)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return 0.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _tree_rss_kb(root: int) -> int:
    """Resident memory of a process and all its descendants (kernels included), from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [p for p, parent in parents.items() if parent == pid and p not in tree]
        tree.update(children)
        frontier += children
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue
    return total


def timed(command: list[str], env: dict, *, memory: bool = False) -> dict:
    """Run a command to completion: wall seconds, CPU seconds of its whole process tree (user + system of every
    descendant it waited for: the runner's kernels and, for a batch, its runs), exit code, output and, with
    `memory`, the peak resident memory of the tree (sampled every 0.2 s)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]
    sampler = None
    if memory:
        def sample() -> None:
            while proc.poll() is None:
                peak[0] = max(peak[0], _tree_rss_kb(proc.pid))
                time.sleep(0.2)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
    out, err = proc.communicate()
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if sampler is not None:
        sampler.join()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 2), "exit": proc.returncode, "stdout": out,
            "stderr": err, "peak_rss_mb": round(peak[0] / 1024, 1) if memory else None}


def must(result: dict, what: str) -> dict:
    if result["exit"] != 0:
        raise RuntimeError(f"{what} exited {result['exit']}:\n{result['stdout'][-3000:]}\n{result['stderr'][-3000:]}")
    return result


def latest_run(runs_dir: Path, environment: str) -> Path:
    return max((runs_dir / environment).glob("*/run.json"), key=lambda p: p.stat().st_mtime).parent


def calls_of(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "calls.jsonl").read_text().splitlines() if line.strip()]


def call_counts(run_dir: Path) -> dict:
    calls = calls_of(run_dir)
    # reads: what a command sent to learn the world (waits' polls, marked "wait" in calls.jsonl, apart)
    return {"calls": len(calls), "mutating": sum(1 for c in calls if c["mutating"]),
            "reads": sum(1 for c in calls if not c["mutating"] and not c.get("wait")),
            "polls": sum(1 for c in calls if c.get("wait"))}


def runbook(args: list[str], box: Sandbox, environment: str) -> dict:
    """One `runbook ...` command of one environment: its wall, CPU, calls and steps (from its run record)."""
    result = must(timed([RUNBOOK, *args], box.env), f"runbook {' '.join(args)}")
    run_dir = latest_run(box.runs_dir, environment)
    record = json.loads((run_dir / "run.json").read_text())
    return {"seconds": result["seconds"], "cpu_seconds": result["cpu_seconds"], **call_counts(run_dir),
            "status": record["status"], "throttled": (record.get("api_calls") or {}).get("throttled", 0),
            "run_dir": str(run_dir),
            "steps": [{k: s.get(k) for k in ("notebook", "seconds", "started_after", "converged_after")
                       if s.get(k) is not None} for s in record["steps"]]}


def reference(params: Path, box: Sandbox, *extra: str) -> dict:
    result = must(timed([PYTHON, REFERENCE, str(params), *extra], box.env), f"reference {' '.join(extra)}")
    out = json.loads(result["stdout"].strip().splitlines()[-1])
    if not out["verified"]["ok"]:
        raise RuntimeError(f"the reference's chain does not verify: {out['verified']}")
    return {"seconds": result["seconds"], "cpu_seconds": result["cpu_seconds"],
            **{k: out[k] for k in ("calls", "mutating", "reads", "polls", "by_operation")}}


def stats(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "runs": len(values), "values": values}


def summary(rows: list[dict]) -> dict:
    """Runs of one measurement: wall and CPU stats; calls of the last run (and of each, to show they agree)."""
    last = rows[-1]
    out = {"seconds": stats([r["seconds"] for r in rows]), "cpu_seconds": stats([r["cpu_seconds"] for r in rows]),
           **{k: last.get(k) for k in ("calls", "mutating", "reads", "polls", "status", "throttled")},
           "calls_each_run": [r["calls"] for r in rows], "mutating_each_run": [r["mutating"] for r in rows]}
    out.update({k: last[k] for k in ("steps", "by_operation", "run_dir") if k in last})
    return out
