"""Benchmarks of the runbook against the minimal boto3 reference (benchmarks/reference.py), on fresh sandboxes.

    .venv/bin/python benchmarks/run.py            # 3 runs of each measurement, 10 environments; a few minutes
    .venv/bin/python benchmarks/run.py --quick    # 1 run, 2 environments: a smoke test of the whole harness

Every measurement runs the real commands as separate processes (`runbook ...` and `python benchmarks/reference.py`)
against a fresh emulator started in its own process (benchmarks/sandbox_proc.py) and seeded with the world of the
params; nothing is warmed up between runs except the OS file cache. Writes results.json and results.md (a
markdown table) to --out and prints the table. Timings are wall clock; API calls come from each run's calls.jsonl
(the runbook) and from a counter on the reference's boto3 session.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RUNBOOK = str(BIN / "runbook")
PYTHON = sys.executable
REFERENCE = str(ROOT / "benchmarks" / "reference.py")
SANDBOX_PROC = str(ROOT / "benchmarks" / "sandbox_proc.py")
DEFAULT_PARAMS = ROOT / "params" / "local.yaml"

TARGETS = {
    "cold_apply_time": 1.5, "reapply_time": 1.3, "verify_time": 1.3, "cold_apply_calls": 1.5,
    "reapply_mutating": 0, "reapply_reads_vs_verify": 1.0, "aws_like_vs_critical_path": 1.2,
    "many_envs_speedup": 1.6,
}


# ---- processes -------------------------------------------------------------------------------------------

class Sandbox:
    """A fresh seeded emulator in its own process; `env` points the commands at it."""

    def __init__(self, params: Path, workdir: Path, aws_like: bool = False):
        self.state = Path(tempfile.mkdtemp(dir=workdir, prefix="sandbox-")) / "sandbox.json"
        command = [PYTHON, SANDBOX_PROC, str(self.state), str(params)] + (["--aws-like"] if aws_like else [])
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not self.state.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the benchmark sandbox did not start: {self.proc.stderr.read()[-2000:]}")
            time.sleep(0.05)
        state = json.loads(self.state.read_text())
        self.runs_dir = self.state.parent / "runs"
        self.env = {**os.environ, **state["env"], "RUNBOOK_RUNS_DIR": str(self.runs_dir),
                    # never find another (user's) announced sandbox
                    "RUNBOOK_SANDBOX_FILE": str(self.state.parent / "none.json"),
                    # these sandboxes have no quotas (no profile): pacing by AWS's would only add waits
                    "RUNBOOK_PACE": "off"}
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            self.env.pop(key, None)

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
    """Run a command to completion; wall seconds, exit code, output, and (optionally) peak RSS of its tree."""
    started = time.monotonic()
    proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]
    if memory:
        def sample() -> None:
            while proc.poll() is None:
                peak[0] = max(peak[0], _tree_rss_kb(proc.pid))
                time.sleep(0.2)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
    out, err = proc.communicate()
    seconds = time.monotonic() - started
    if memory:
        sampler.join()
    return {"seconds": round(seconds, 3), "exit": proc.returncode, "stdout": out, "stderr": err,
            "peak_rss_mb": round(peak[0] / 1024, 1) if memory else None}


def _must(result: dict, what: str) -> dict:
    if result["exit"] != 0:
        raise RuntimeError(f"{what} exited {result['exit']}:\n{result['stdout'][-3000:]}\n{result['stderr'][-3000:]}")
    return result


def latest_run(runs_dir: Path, environment: str) -> Path:
    return max((runs_dir / environment).glob("*/run.json"), key=lambda p: p.stat().st_mtime).parent


def call_counts(run_dir: Path) -> dict:
    calls = [json.loads(line) for line in (run_dir / "calls.jsonl").read_text().splitlines() if line.strip()]
    # reads: what a command sent to learn the world (waits' polls, marked "wait" in calls.jsonl, apart)
    return {"calls": len(calls), "mutating": sum(1 for c in calls if c["mutating"]),
            "reads": sum(1 for c in calls if not c["mutating"] and not c.get("wait")),
            "polls": sum(1 for c in calls if c.get("wait"))}


def runbook(args: list[str], box: Sandbox, environment: str, *, memory: bool = False) -> dict:
    result = _must(timed([RUNBOOK, *args], box.env, memory=memory), f"runbook {' '.join(args)}")
    run_dir = latest_run(box.runs_dir, environment)
    record = json.loads((run_dir / "run.json").read_text())
    return {"seconds": result["seconds"], **call_counts(run_dir), "status": record["status"],
            "steps": [{k: s.get(k) for k in ("notebook", "seconds", "started_after")} for s in record["steps"]]}


def reference(params: Path, box: Sandbox, *extra: str) -> dict:
    result = _must(timed([PYTHON, REFERENCE, str(params), *extra], box.env), f"reference {' '.join(extra)}")
    out = json.loads(result["stdout"].strip().splitlines()[-1])
    if not out["verified"]["ok"]:
        raise RuntimeError(f"the reference's chain does not verify: {out['verified']}")
    return {"seconds": result["seconds"], "calls": out["calls"], "mutating": out["mutating"],
            "by_operation": out["by_operation"]}


# ---- measurements ----------------------------------------------------------------------------------------

def stats(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "runs": len(values), "values": values}


def measure_lifecycle(params: Path, environment: str, runs: int, workdir: Path) -> dict:
    """Cold apply, no-op re-apply, verify and destroy of the runbook; build+verify and verify of the reference."""
    rows: dict[str, list[dict]] = {k: [] for k in ("apply", "reapply", "verify", "destroy", "reference",
                                                   "reference_verify")}
    for i in range(runs):
        print(f"  lifecycle run {i + 1}/{runs}: runbook", file=sys.stderr, flush=True)
        with Sandbox(params, workdir) as box:
            rows["apply"].append(runbook(["apply", str(params)], box, environment))
            rows["reapply"].append(runbook(["apply", str(params)], box, environment))
            rows["verify"].append(runbook(["verify", str(params)], box, environment))
            rows["destroy"].append(runbook(["destroy", str(params), "--yes"], box, environment))
        print(f"  lifecycle run {i + 1}/{runs}: reference", file=sys.stderr, flush=True)
        with Sandbox(params, workdir) as box:
            rows["reference"].append(reference(params, box))
            rows["reference_verify"].append(reference(params, box, "--verify-only"))
    return {k: {"seconds": stats([r["seconds"] for r in v]), "calls": v[-1]["calls"], "mutating": v[-1]["mutating"],
                "reads": v[-1].get("reads"), "polls": v[-1].get("polls"),
                "calls_each_run": [r["calls"] for r in v], "mutating_each_run": [r["mutating"] for r in v],
                "last": {key: r for key, r in v[-1].items() if key in ("steps", "by_operation")}}
            for k, v in rows.items()}


def measure_aws_like(params: Path, environment: str, runs: int, workdir: Path) -> dict:
    """Apply and the reference with server.AWS_LIKE transition delays; the critical path in theory and measured."""
    from vpclink_runbooks.sandbox.server import AWS_LIKE

    apply, ref = [], []
    for i in range(runs):
        print(f"  AWS-like run {i + 1}/{runs}", file=sys.stderr, flush=True)
        with Sandbox(params, workdir, aws_like=True) as box:
            apply.append(runbook(["apply", str(params)], box, environment))
        with Sandbox(params, workdir, aws_like=True) as box:
            ref.append(reference(params, box))
    return {
        "delays": vars(AWS_LIKE),
        # NLB active -> VPC link AVAILABLE -> deployment; the service's start and health run beside the link.
        "critical_path_delays_s": AWS_LIKE.nlb_provisioning + AWS_LIKE.vpc_link_pending,
        "apply": {"seconds": stats([r["seconds"] for r in apply]), "steps": apply[-1]["steps"]},
        "reference": {"seconds": stats([r["seconds"] for r in ref])},
    }


FLOOR_CODE = """import sys
sys.modules.setdefault("rfc3987_syntax", None)  # as lib/run/kernels.py's _import_papermill: skip a 2 s grammar build
import papermill
papermill.execute_notebook(sys.argv[1], sys.argv[2], kernel_name="python3", progress_bar=False)
"""


def measure_floor(runs: int, workdir: Path) -> dict:
    """What any command that leaves an executed notebook pays before its first AWS call: one process that runs
    papermill on a notebook holding only the verify notebook's imports (a kernel starts, lib loads), no AWS call,
    no run record, no HTML page. The runbook's verify cannot be faster than this."""
    import nbformat

    from vpclink_runbooks.run.kernels import _warm_up_code

    source = workdir / "floor.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(_warm_up_code("50_verify"))],
                                            metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                     "display_name": "Python 3"}}), source)
    seconds = []
    for i in range(runs):
        print(f"  floor run {i + 1}/{runs}", file=sys.stderr, flush=True)
        result = _must(timed([PYTHON, "-c", FLOOR_CODE, str(source), str(workdir / "floor-out.ipynb")],
                             dict(os.environ)), "papermill on the floor notebook")
        seconds.append(result["seconds"])
    return {"seconds": stats(seconds)}


def environment_params(base: Path, count: int, workdir: Path) -> list[tuple[Path, str]]:
    """`count` environments over one seeded world: own names, host ports and base paths."""
    data = yaml.safe_load(base.read_text())
    out = []
    for i in range(count):
        env = dict(data, environment=f"bench{i:02d}")
        env["service"] = dict(data["service"], name=f"svc{i:02d}", host_port=data["service"]["host_port"] + i,
                              desired_count=1)
        env["nlb"] = dict(data.get("nlb") or {}, listener_port=None)
        env["api"] = dict(data["api"], base_path=f"svc{i:02d}")
        path = workdir / f"bench{i:02d}.yaml"
        path.write_text(yaml.safe_dump(env, sort_keys=False))
        out.append((path, env["environment"]))
    return out


def measure_many(base: Path, count: int, parallel: int, workdir: Path) -> dict:
    """`runbook apply E1..En --parallel N` against --parallel 1, each on a fresh world."""
    envs = environment_params(base, count, workdir)
    results = {}
    for label, n in (("sequential", 1), ("parallel", parallel)):
        print(f"  {count} environments, --parallel {n}", file=sys.stderr, flush=True)
        with Sandbox(base, workdir) as box:
            result = _must(timed([RUNBOOK, "apply", *[str(p) for p, _ in envs], "--parallel", str(n)], box.env,
                                 memory=True), f"apply {count} environments --parallel {n}")
            statuses = [json.loads((latest_run(box.runs_dir, name) / "run.json").read_text())["status"]
                        for _, name in envs]
        results[label] = {"parallel": n, "seconds": result["seconds"], "peak_rss_mb": result["peak_rss_mb"],
                          "succeeded": statuses.count("succeeded")}
    results["environments"] = count
    results["speedup"] = round(results["sequential"]["seconds"] / results["parallel"]["seconds"], 2)
    return results


# ---- report ----------------------------------------------------------------------------------------------

def ratios(r: dict) -> dict:
    life = r["lifecycle"]
    out = {
        "cold_apply_time": life["apply"]["seconds"]["median"] / life["reference"]["seconds"]["median"],
        "reapply_time": life["reapply"]["seconds"]["median"] / life["reference_verify"]["seconds"]["median"],
        "verify_time": life["verify"]["seconds"]["median"] / life["reference_verify"]["seconds"]["median"],
        "cold_apply_calls": life["apply"]["calls"] / life["reference"]["calls"],
        "reapply_mutating": life["reapply"]["mutating"],
        "reapply_reads_vs_verify": life["reapply"]["reads"] / life["verify"]["reads"],
    }
    if "aws_like" in r:
        aws = r["aws_like"]
        out["aws_like_vs_critical_path"] = aws["apply"]["seconds"]["median"] / aws["reference"]["seconds"]["median"]
        out["aws_like_vs_delays"] = aws["apply"]["seconds"]["median"] / aws["critical_path_delays_s"]
    if "many" in r:
        out["many_envs_speedup"] = r["many"]["speedup"]
    if "floor" in r:
        out["floor_vs_reference_verify"] = (r["floor"]["seconds"]["median"]
                                            / life["reference_verify"]["seconds"]["median"])
    return {k: round(v, 2) for k, v in out.items()}


def met(name: str, value: float) -> bool:
    target = TARGETS[name]
    return value >= target if name == "many_envs_speedup" else value <= target


def _s(stat: dict) -> str:
    return f"{stat['median']:.2f} s ({stat['min']:.2f}-{stat['max']:.2f}, n={stat['runs']})"


def markdown(r: dict) -> str:
    life, q = r["lifecycle"], r["ratios"]
    m = r["machine"]
    lines = [f"Machine: {m['nproc']} cores ({m['load_before']} load average before), Python {m['python']}, "
             f"{m['platform']}; {m['date']}; {r['runs']} run(s) each, median (min-max).", "",
             "| measurement | runbook | reference | ratio | target | met |", "|---|---|---|---|---|---|"]

    def row(label, ours, theirs, key):
        value = q.get(key)
        target = TARGETS[key]
        shown = "-" if value is None else f"{value:g}" if key == "reapply_mutating" else f"{value:.2f}x"
        goal = "0 mutating" if key == "reapply_mutating" else f">= {target}x" if key == "many_envs_speedup" \
            else f"<= {target}x"
        lines.append(f"| {label} | {ours} | {theirs} | {shown} | {goal} | {'yes' if met(key, value) else 'NO'} |")

    row("cold apply, whole process", _s(life["apply"]["seconds"]), _s(life["reference"]["seconds"]),
        "cold_apply_time")
    row("no-op re-apply", _s(life["reapply"]["seconds"]), _s(life["reference_verify"]["seconds"]) + " (verify)",
        "reapply_time")
    row("verify alone", _s(life["verify"]["seconds"]), _s(life["reference_verify"]["seconds"]), "verify_time")
    row("cold apply API calls", f"{life['apply']['calls']} ({life['apply']['mutating']} mutating)",
        f"{life['reference']['calls']} ({life['reference']['mutating']} mutating)", "cold_apply_calls")
    row("re-apply mutating calls", f"{life['reapply']['mutating']} of {life['reapply']['calls']} calls", "0",
        "reapply_mutating")
    ratio = q["reapply_reads_vs_verify"]
    lines.append(f"| re-apply reads vs verify's (runbook's own; polls apart) | {life['reapply']['reads']} reads "
                 f"(+{life['reapply']['polls']} polls) | verify {life['verify']['reads']} reads | {ratio:.2f}x | "
                 f"<= 1x | {'yes' if met('reapply_reads_vs_verify', ratio) else 'NO'} |")
    if "aws_like" in r:
        aws = r["aws_like"]
        row("apply with AWS-like delays", _s(aws["apply"]["seconds"]),
            _s(aws["reference"]["seconds"]) + f"; delays alone {aws['critical_path_delays_s']:.0f} s",
            "aws_like_vs_critical_path")
    if "many" in r:
        many = r["many"]
        row(f"{many['environments']} environments, --parallel {many['parallel']['parallel']}",
            f"{many['parallel']['seconds']:.1f} s, peak {many['parallel']['peak_rss_mb']:.0f} MB",
            f"sequential {many['sequential']['seconds']:.1f} s, peak {many['sequential']['peak_rss_mb']:.0f} MB",
            "many_envs_speedup")
    lines += ["", "| API calls per command | total | mutating | reads | waits' polls |", "|---|---|---|---|---|"]
    for key, label in (("apply", "cold apply"), ("reapply", "re-apply"), ("verify", "verify"),
                       ("destroy", "destroy --yes"), ("reference", "reference build + verify"),
                       ("reference_verify", "reference verify")):
        reads, polls = life[key].get("reads"), life[key].get("polls")
        lines.append(f"| {label} | {life[key]['calls']} | {life[key]['mutating']} | "
                     f"{'-' if reads is None else reads} | {'-' if polls is None else polls} |")
    if "floor" in r:
        lines += ["", f"Floor: papermill running one notebook with only the verify notebook's imports (a kernel "
                  f"starts and loads lib; no AWS call, no record, no page), whole process: {_s(r['floor']['seconds'])}"
                  f", {q['floor_vs_reference_verify']:.2f}x the reference's verify."]
    if "aws_like" in r:
        lines += ["", "AWS-like apply, steps (start offset s, seconds): " + ", ".join(
            f"{s['notebook'].removesuffix('.ipynb')} @{s['started_after']} {s['seconds']}"
            for s in r["aws_like"]["apply"]["steps"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 run, 2 environments: a smoke test")
    parser.add_argument("--runs", type=int, help="runs of each measurement (default 3; 1 with --quick)")
    parser.add_argument("--envs", type=int, help="environments applied by one command (default 10; 2 with --quick)")
    parser.add_argument("--parallel", type=int, default=2, help="bounded parallelism for the environments")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="a sandbox params file")
    parser.add_argument("--skip", action="append", default=[], choices=["aws-like", "many"])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    envs = args.envs or (2 if args.quick else 10)
    params = args.params.resolve()
    environment = yaml.safe_load(params.read_text())["environment"]
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"runs": runs, "quick": args.quick, "machine": {
        "nproc": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg())}}
    with tempfile.TemporaryDirectory(prefix="runbook-bench-") as tmp:
        workdir = Path(tmp)
        print("lifecycle (default sandbox delays)", file=sys.stderr, flush=True)
        results["lifecycle"] = measure_lifecycle(params, environment, runs, workdir)
        print("floor (one notebook through papermill, no AWS)", file=sys.stderr, flush=True)
        results["floor"] = measure_floor(runs, workdir)
        if "aws-like" not in args.skip:
            print("AWS-like delays", file=sys.stderr, flush=True)
            results["aws_like"] = measure_aws_like(params, environment, runs, workdir)
        if "many" not in args.skip:
            print("many environments", file=sys.stderr, flush=True)
            results["many"] = measure_many(params, envs, args.parallel, workdir)
    results["ratios"] = ratios(results)
    results["targets"] = {k: {"target": TARGETS[k], "value": v, "met": met(k, v)}
                          for k, v in results["ratios"].items() if k in TARGETS}
    table = markdown(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    (args.out / "results.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
