"""The measurements: the AWS-like profile (one environment, and a batch of them), and the plain emulator."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from benchmarks import gantt
from benchmarks.procs import RUNBOOK, Sandbox, calls_of, latest_run, must, reference, runbook, stats, summary, timed


def _say(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def profile_facts(scale: float) -> dict:
    """What the AWS-like profile at `scale` adds, read from the profile itself (another profile or scale works)."""
    from vpclink_runbooks.sandbox.profile import Profile

    profile = Profile(scale=scale)
    delays = vars(profile.delays())
    # NLB active -> VPC link AVAILABLE; the targets' health (from the later of registration and the NLB's
    # activity) and the tasks' start run beside the link's wait
    path = delays["nlb_provisioning"] + max(delays["vpc_link_pending"], delays["target_healthy"],
                                            delays["task_start"])
    return {"scale": scale, "latency_s": profile.latency, "delays_s": delays, "delays_critical_path_s": path}


def measure_aws_like(params: Path, environment: str, runs: int, scale: float, workdir: Path,
                     gantt_out: Path | None) -> dict:
    """Cold apply, re-apply, verify of the runbook on a fresh AWS-like sandbox; the reference's build + verify
    and verify alone on another; the Gantt chart of the last cold apply."""
    rows: dict[str, list[dict]] = {k: [] for k in ("apply", "reapply", "verify", "reference", "reference_verify")}
    for i in range(runs):
        _say(f"AWS-like run {i + 1}/{runs}: runbook")
        with Sandbox(params, workdir, aws_like=True, scale=scale) as box:
            rows["apply"].append(runbook(["apply", str(params)], box, environment))
            rows["reapply"].append(runbook(["apply", str(params)], box, environment))
            rows["verify"].append(runbook(["verify", str(params)], box, environment))
        _say(f"AWS-like run {i + 1}/{runs}: reference")
        with Sandbox(params, workdir, aws_like=True, scale=scale) as box:
            rows["reference"].append(reference(params, box))
            rows["reference_verify"].append(reference(params, box, "--verify-only"))
    out = {"profile": profile_facts(scale), **{k: summary(v) for k, v in rows.items()}}
    if gantt_out is not None:
        run_dir = Path(rows["apply"][-1]["run_dir"])
        record = json.loads((run_dir / "run.json").read_text())
        gantt_out.parent.mkdir(parents=True, exist_ok=True)
        gantt_out.write_text(gantt.svg(gantt.spans(run_dir), f"runbook apply {record['environment']}, AWS-like "
                                       f"profile at scale {scale:g} ({record['run_id']})"))
        out["gantt"] = {"path": str(gantt_out), "steps": [s["notebook"] for s in record["steps"]]}
    return out


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


def quota_counts(run_dirs: list[Path]) -> dict[str, int]:
    """Calls of each quota-limited API Gateway operation, and of all of them (the total quota), in these runs."""
    from vpclink_runbooks.aws.quotas import QUOTAS

    counts: dict[str, int] = {}
    for run_dir in run_dirs:
        for call in calls_of(run_dir):
            if call.get("service") not in ("apigateway", "apigatewayv2"):
                continue
            counts["total"] = counts.get("total", 0) + 1
            if (call["service"], call["operation"]) in QUOTAS:
                key = f"{call['service']}.{call['operation']}"
                counts[key] = counts.get(key, 0) + 1
    return counts


def quota_floor(counts: dict[str, int], scale: float) -> dict[str, float]:
    """Per quota: the batch's count of it divided by its scaled rate (seconds no pacing can beat)."""
    from vpclink_runbooks.aws.quotas import QUOTAS, TOTAL

    out = {}
    for key, count in counts.items():
        quota = TOTAL if key == "total" else QUOTAS[tuple(key.split("."))]
        scaled = quota.scaled(scale)
        out[key] = round(count * scaled.seconds / scaled.calls, 3)
    return out


def _batch(command: str, envs: list[tuple[Path, str]], box: Sandbox, parallel: int) -> dict:
    """One `runbook apply|destroy ENV... --parallel N`: wall, CPU, memory; each environment's record."""
    extra = ["--yes"] if command == "destroy" else []
    result = must(timed([RUNBOOK, command, *[str(p) for p, _ in envs], *extra, "--parallel", str(parallel)],
                        box.env, memory=True), f"{command} of {len(envs)} environments --parallel {parallel}")
    run_dirs = [latest_run(box.runs_dir, name) for _, name in envs]
    records = [json.loads((d / "run.json").read_text()) for d in run_dirs]
    return {"seconds": result["seconds"], "cpu_seconds": result["cpu_seconds"],
            "cpu_seconds_per_run": round(result["cpu_seconds"] / len(envs), 2), "peak_rss_mb": result["peak_rss_mb"],
            "failed": sum(r["status"] != "succeeded" for r in records),
            "throttled": sum((r.get("api_calls") or {}).get("throttled", 0) for r in records),
            "calls": sum((r.get("api_calls") or {}).get("total", 0) for r in records),
            "quota_calls": quota_counts(run_dirs), "run_dirs": [str(d) for d in run_dirs]}


def measure_many(base: Path, count: int, parallel: int, runs: int, scale: float, workdir: Path) -> dict:
    """`runbook apply E1..En --parallel N` then `runbook destroy E1..En --yes --parallel N` on one fresh AWS-like
    sandbox; one environment's apply and destroy alone on another, as the critical path of the floor."""
    envs = environment_params(base, count, workdir)
    single: dict[str, list[dict]] = {"apply": [], "destroy": []}
    batch: dict[str, list[dict]] = {"apply": [], "destroy": []}
    for i in range(runs):
        _say(f"one environment alone (the critical path), run {i + 1}/{runs}")
        with Sandbox(base, workdir, aws_like=True, scale=scale) as box:
            path, name = envs[0]
            single["apply"].append(runbook(["apply", str(path)], box, name))
            single["destroy"].append(runbook(["destroy", str(path), "--yes"], box, name))
        _say(f"{count} environments, --parallel {parallel}, run {i + 1}/{runs}")
        with Sandbox(base, workdir, aws_like=True, scale=scale) as box:
            for command in ("apply", "destroy"):
                cpu = box.cpu_seconds()
                batch[command].append(_batch(command, envs, box, parallel))
                batch[command][-1]["sandbox_cpu_seconds"] = round(box.cpu_seconds() - cpu, 2)
    out: dict = {"environments": count, "parallel": parallel, "runs": runs, "scale": scale}
    for command in ("apply", "destroy"):
        last = batch[command][-1]
        critical = stats([r["seconds"] for r in single[command]])
        quotas = quota_floor(last["quota_calls"], scale)
        floor = max([critical["median"], *quotas.values()])
        out[command] = {
            "seconds": stats([r["seconds"] for r in batch[command]]),
            "cpu_seconds": stats([r["cpu_seconds"] for r in batch[command]]),
            "cpu_seconds_per_run": stats([r["cpu_seconds_per_run"] for r in batch[command]]),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in batch[command]),
            "sandbox_cpu_seconds": stats([r["sandbox_cpu_seconds"] for r in batch[command]]),
            "failed": sum(r["failed"] for r in batch[command]),
            "throttled": sum(r["throttled"] for r in batch[command]),
            "calls": last["calls"], "quota_calls": last["quota_calls"], "quota_floor_s": quotas,
            "single": {"seconds": critical, "cpu_seconds": stats([r["cpu_seconds"] for r in single[command]]),
                       "status": [r["status"] for r in single[command]]},
            "floor_s": floor, "floor_by": "one environment alone" if floor == critical["median"] else
            f"quota {max(quotas, key=quotas.get)}"}
    return out


def measure_plain(params: Path, environment: str, runs: int, workdir: Path) -> dict:
    """On the plain emulator (no profile, no pacing): the runbook's lifecycle against the reference."""
    rows: dict[str, list[dict]] = {k: [] for k in ("apply", "reapply", "verify", "destroy", "reference",
                                                   "reference_verify")}
    for i in range(runs):
        _say(f"plain emulator run {i + 1}/{runs}: runbook")
        with Sandbox(params, workdir) as box:
            rows["apply"].append(runbook(["apply", str(params)], box, environment))
            rows["reapply"].append(runbook(["apply", str(params)], box, environment))
            rows["verify"].append(runbook(["verify", str(params)], box, environment))
            page = workdir / "verify-page.ipynb"  # the floor's page part renders this executed notebook
            page.write_bytes((Path(rows["verify"][-1]["run_dir"]) / "50_verify.ipynb").read_bytes())
            rows["destroy"].append(runbook(["destroy", str(params), "--yes"], box, environment))
        _say(f"plain emulator run {i + 1}/{runs}: reference")
        with Sandbox(params, workdir) as box:
            rows["reference"].append(reference(params, box))
            rows["reference_verify"].append(reference(params, box, "--verify-only"))
    return {k: summary(v) for k, v in rows.items()}
