"""Benchmarks of the runbook against the minimal boto3 reference (benchmarks/reference.py), on fresh sandboxes.

    .venv/bin/python benchmarks/run.py            # 3 runs of each measurement, 10 environments; a quiet machine
    .venv/bin/python benchmarks/run.py --quick    # 1 run, 2 environments, scale 0.02: a smoke test of the harness

Every measurement runs the real commands as separate processes (`runbook ...` and `python benchmarks/reference.py`)
against a fresh emulator started in its own process (benchmarks/sandbox_proc.py) and seeded with the world of the
params; nothing is warmed up between runs except the OS file cache. The issue's targets are judged under the
sandbox's AWS-like profile (--scale); the plain emulator and the floor's parts are reported without target.
Writes results.json and results.md (markdown tables) to --out and prints the tables. Timings are wall clock; CPU
is the whole process tree's; API calls come from each run's calls.jsonl and the reference's own counter.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import yaml

if __package__ in (None, ""):  # run as a script: the repository's root holds the benchmarks package
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import report  # noqa: E402
from benchmarks.floor import measure_floor  # noqa: E402
from benchmarks.measure import environment_params, measure_aws_like, measure_many, measure_plain  # noqa: E402,F401
from benchmarks.procs import ROOT, Sandbox  # noqa: E402,F401 - Sandbox: tests start one

DEFAULT_PARAMS = ROOT / "params" / "local.yaml"
DEFAULT_GANTT = ROOT / "benchmarks" / "apply-gantt-aws-like.svg"
SECTIONS = ("floor", "plain", "aws-like", "many")


def machine() -> dict:
    return {"nproc": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + (" (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else "")


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 run, 2 environments, scale 0.02: a smoke test")
    parser.add_argument("--runs", type=int, help="runs of each measurement (default 3; 1 with --quick)")
    parser.add_argument("--envs", type=int, help="environments of the batch (default 10; 2 with --quick)")
    parser.add_argument("--parallel", type=int, help="--parallel of the batch (default: --envs)")
    parser.add_argument("--scale", type=float, help="the AWS-like profile's scale (default 0.1; 0.02 with --quick)")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="a sandbox params file")
    parser.add_argument("--skip", action="append", default=[], choices=SECTIONS)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--gantt", type=Path, help=f"where the AWS-like apply's time line goes (default "
                        f"{DEFAULT_GANTT.relative_to(ROOT)}; with --quick, in --out)")
    args = parser.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 3)
    args.envs = args.envs or (2 if args.quick else 10)
    args.parallel = args.parallel or args.envs
    args.scale = args.scale or (0.02 if args.quick else 0.1)
    args.params = args.params.resolve()
    args.gantt = args.gantt or (args.out / DEFAULT_GANTT.name if args.quick else DEFAULT_GANTT)
    return args


def measure(args: argparse.Namespace, workdir: Path) -> dict:
    environment = yaml.safe_load(args.params.read_text())["environment"]
    results: dict = {}
    if "plain" not in args.skip:
        print("plain emulator: the runbook's lifecycle and the reference", file=sys.stderr, flush=True)
        results["plain"] = measure_plain(args.params, environment, args.runs, workdir)
    if "floor" not in args.skip:
        print("the floor and its parts (no AWS)", file=sys.stderr, flush=True)
        page = workdir / "verify-page.ipynb"
        results["floor"] = measure_floor(args.runs, workdir, page if page.exists() else None)
    if "aws-like" not in args.skip:
        print(f"AWS-like profile at scale {args.scale:g}: one environment", file=sys.stderr, flush=True)
        results["aws_like"] = measure_aws_like(args.params, environment, args.runs, args.scale, workdir, args.gantt)
    if "many" not in args.skip:
        print(f"AWS-like profile at scale {args.scale:g}: {args.envs} environments", file=sys.stderr, flush=True)
        results["many"] = measure_many(args.params, args.envs, args.parallel, args.runs, args.scale, workdir)
    return results


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"runs": args.runs, "quick": args.quick, "machine": machine(), "commit": commit()}
    with tempfile.TemporaryDirectory(prefix="runbook-bench-") as tmp:
        results.update(measure(args, Path(tmp)))
    results["ratios"] = report.ratios(results)
    results["targets"] = report.targets(results["ratios"])
    table = report.markdown(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    (args.out / "results.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
