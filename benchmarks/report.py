"""The benchmarks' report: the issue's targets, the ratios that judge them, and the markdown tables."""

from __future__ import annotations

# The targets (all "ratio or count <= target"), under the sandbox's AWS-like profile.
TARGETS = {
    "cold_apply_time": 1.15,  # 1. runbook apply / the reference's build + verify, whole processes
    "cold_apply_calls": 1.5,  # 2. API calls of a cold apply / the reference's
    "reapply_mutating": 0,  # 2. a re-apply changes nothing
    "verify_above_floor": 1.5,  # 3. (runbook verify - floor) / the reference's verification
    "many_failed": 0,  # 4. runs of the batch that did not succeed
    "many_throttled": 0,  # 4. calls of the batch AWS throttled
    "many_apply_vs_floor": 1.5,  # 4. batch wall / its floor
    "many_destroy_vs_floor": 1.5,
    "many_both_vs_floor": 1.5,
}


def _median(stat: dict) -> float:
    return stat["seconds"]["median"]


def ratios(r: dict) -> dict:
    out: dict[str, float] = {}
    if "aws_like" in r:
        aws = r["aws_like"]
        out["cold_apply_time"] = _median(aws["apply"]) / _median(aws["reference"])
        out["cold_apply_calls"] = aws["apply"]["calls"] / aws["reference"]["calls"]
        out["reapply_mutating"] = max(aws["reapply"]["mutating_each_run"])
        out["reapply_vs_reference_verify"] = _median(aws["reapply"]) / _median(aws["reference_verify"])
        if "floor" in r:
            out["verify_above_floor"] = ((_median(aws["verify"]) - r["floor"]["seconds"]["median"])
                                         / _median(aws["reference_verify"]))
    if "many" in r:
        many = r["many"]
        out["many_failed"] = many["apply"]["failed"] + many["destroy"]["failed"]
        out["many_throttled"] = many["apply"]["throttled"] + many["destroy"]["throttled"]
        for command in ("apply", "destroy"):
            out[f"many_{command}_vs_floor"] = _median(many[command]) / many[command]["floor_s"]
        out["many_both_vs_floor"] = ((_median(many["apply"]) + _median(many["destroy"]))
                                     / (many["apply"]["floor_s"] + many["destroy"]["floor_s"]))
    return {k: round(v, 2) for k, v in out.items()}


def targets(ratio: dict) -> dict:
    return {k: {"target": t, "value": ratio[k], "met": ratio[k] <= t} for k, t in TARGETS.items() if k in ratio}


def _s(stat: dict) -> str:
    return f"{stat['median']:.2f} s ({stat['min']:.2f}-{stat['max']:.2f}, n={stat['runs']})"


def _calls(m: dict) -> str:
    return f"{m['calls']} ({m['mutating']} mutating, {m['reads']} reads, {m['polls']} polls)"


def _row(r: dict, number: str, label: str, ours: str, theirs: str, key: str) -> str:
    value, target = r["ratios"][key], TARGETS[key]
    shown = f"{value:g}" if isinstance(target, int) and target == 0 else f"{value:.2f}x"
    goal = f"{target}" if target == 0 else f"<= {target}x"
    return f"| {number} | {label} | {ours} | {theirs} | {shown} | {goal} | {'yes' if value <= target else 'NO'} |"


def _aws_like(r: dict) -> list[str]:
    aws, f = r["aws_like"], r["aws_like"]["profile"]
    d = f["delays_s"]
    lines = ["", f"### Targets 1-3: one environment, AWS-like profile at scale {f['scale']:g}", "",
             f"{f['latency_s'] * 1000:.0f} ms a call; NLB active {d['nlb_provisioning']:g} s, VPC link PENDING "
             f"{d['vpc_link_pending']:g} s, task start {d['task_start']:g} s, target health {d['target_healthy']:g} s "
             f"(the delays alone on the critical path: {f['delays_critical_path_s']:g} s); API Gateway's quotas with "
             f"periods x{f['scale']:g}, by which the runbook paces. Each run on a fresh emulator process.", "",
             "| # | measurement | runbook | reference | ratio | target | met |", "|---|---|---|---|---|---|---|",
             _row(r, "1", "cold apply, whole process", _s(aws["apply"]["seconds"]),
                  "build + verify " + _s(aws["reference"]["seconds"]), "cold_apply_time"),
             _row(r, "2", "cold apply API calls", _calls(aws["apply"]), _calls(aws["reference"]), "cold_apply_calls"),
             _row(r, "2", "re-apply mutating calls", f"{aws['reapply']['mutating']} of {aws['reapply']['calls']}",
                  "-", "reapply_mutating")]
    if "verify_above_floor" in r["ratios"]:
        floor = r["floor"]["seconds"]["median"]
        lines.append(_row(r, "3", "verify, cost above the floor", f"{_s(aws['verify']['seconds'])} - floor "
                          f"{floor:.2f} s = {_median(aws['verify']) - floor:.2f} s",
                          "verification alone " + _s(aws["reference_verify"]["seconds"]), "verify_above_floor"))
    lines += [f"| - | re-apply, whole process (no target) | {_s(aws['reapply']['seconds'])} | verification alone "
              f"{_s(aws['reference_verify']['seconds'])} | {r['ratios']['reapply_vs_reference_verify']:.2f}x | - | - |",
              "", "| API calls (AWS-like) | total | mutating | reads | waits' polls | CPU s (median) |",
              "|---|---|---|---|---|---|"]
    for key, label in (("apply", "runbook cold apply"), ("reapply", "runbook re-apply"), ("verify", "runbook verify"),
                       ("reference", "reference build + verify"), ("reference_verify", "reference verification")):
        m = aws[key]
        lines.append(f"| {label} | {m['calls']} | {m['mutating']} | {m['reads']} | {m['polls']} | "
                     f"{m['cpu_seconds']['median']:.1f} |")
    lines += ["", "AWS-like cold apply, steps (start offset s, seconds): " + ", ".join(
        f"{s['notebook'].removesuffix('.ipynb')} @{s['started_after']} {s['seconds']}" for s in aws["apply"]["steps"])]
    if "gantt" in aws:
        lines.append(f"Its time line: `{aws['gantt']['path']}`.")
    return lines


def _many(r: dict) -> list[str]:
    many = r["many"]
    n, par = many["environments"], many["parallel"]
    lines = ["", f"### Target 4: {n} environments, --parallel {par}, AWS-like profile at scale {many['scale']:g}", "",
             "The floor of each batch: the larger of one environment's critical path (measured: that command of one "
             "environment alone on a fresh emulator) and, per quota-limited API Gateway operation, the batch's calls "
             "of it divided by its scaled rate.", "",
             "| # | measurement | runbook | floor | ratio | target | met |", "|---|---|---|---|---|---|---|"]
    for command, label in (("apply", f"`runbook apply E1..E{n} --parallel {par}`"),
                           ("destroy", f"`runbook destroy E1..E{n} --yes --parallel {par}`")):
        m = many[command]
        lines.append(_row(r, "4", label, _s(m["seconds"]), f"{m['floor_s']:.2f} s ({m['floor_by']})",
                          f"many_{command}_vs_floor"))
    both = _median(many["apply"]) + _median(many["destroy"])
    lines += [_row(r, "4", "apply + destroy", f"{both:.2f} s",
                   f"{many['apply']['floor_s'] + many['destroy']['floor_s']:.2f} s", "many_both_vs_floor"),
              _row(r, "4", "runs that failed", f"{r['ratios']['many_failed']} of {2 * n * many['runs']}", "-",
                   "many_failed"),
              _row(r, "4", "throttled calls", f"{r['ratios']['many_throttled']}", "-", "many_throttled"),
              "", "| batch | CPU s, whole tree (per run) | peak memory | emulator CPU s | API calls | quota floors, s "
              "(calls) | one environment alone |", "|---|---|---|---|---|---|---|"]
    for command in ("apply", "destroy"):
        m = many[command]
        quotas = ", ".join(f"{k.split('.')[-1]} {v:.1f} ({m['quota_calls'][k]})" for k, v in m["quota_floor_s"].items())
        lines.append(f"| {command} | {m['cpu_seconds']['median']:.1f} ({m['cpu_seconds_per_run']['median']:.1f}) | "
                     f"{m['peak_rss_mb']:.0f} MB | {m['sandbox_cpu_seconds']['median']:.1f} | {m['calls']} | "
                     f"{quotas} | {_s(m['single']['seconds'])}, CPU {m['single']['cpu_seconds']['median']:.1f} s |")
    return lines


def _plain(r: dict) -> list[str]:
    p, floor = r["plain"], r.get("floor")
    base = floor["seconds"]["median"] if floor else None
    lines = ["", "### Plain emulator (no profile, no pacing; no target)", "",
             "| measurement | runbook | reference | vs reference | above the floor | API calls |",
             "|---|---|---|---|---|---|"]
    for key, label, theirs in (("apply", "cold apply", "reference"), ("reapply", "re-apply", "reference_verify"),
                               ("verify", "verify", "reference_verify"), ("destroy", "destroy --yes", None)):
        m = p[key]
        ref = f"{'build + verify' if theirs == 'reference' else 'verification'} {_s(p[theirs]['seconds'])}" \
            if theirs else "-"
        vs = f"{_median(m) / _median(p[theirs]):.2f}x" if theirs else "-"
        above = f"{_median(m) - base:.2f} s" if base is not None else "-"
        lines.append(f"| {label} | {_s(m['seconds'])} | {ref} | {vs} | {above} | {_calls(m)} |")
    lines.append(f"| reference calls | - | build + verify {_calls(p['reference'])}; verification "
                 f"{_calls(p['reference_verify'])} | - | - | - |")
    return lines


def _floor(r: dict) -> list[str]:
    floor = r["floor"]
    lines = ["", f"Floor: papermill running one notebook of the verify notebook's imports, whole process: "
             f"{_s(floor['seconds'])}. Its parts, each its own process (inner: the part alone, timed inside it):", "",
             "| part | process wall | inner |", "|---|---|---|"]
    labels = {"interpreter": "interpreter start (`python -c pass`)", "papermill import": "`import papermill`",
              "kernel start": "kernel start (python3: start, ready; shut down)",
              "lib import in a kernel": "lib import in a started kernel (verify's imports)",
              "page": f"page (export_html of {floor['page_notebook'].split('/')[-1]})"}
    for name, label in labels.items():
        part = floor["parts"][name]
        inner = _s(part["inner"]) if part["inner"] else "-"
        lines.append(f"| {label} | {_s(part['seconds'])} | {inner} |")
    return lines


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [f"Machine: {m['nproc']} cores, Python {m['python']}, {m['platform']}; load average before "
             f"{m['load_before']}; {m['date']}; code at commit {r['commit']}; {r['runs']} run(s) each, median "
             f"(min-max, n){'; a --quick smoke run' if r['quick'] else ''}."]
    if "aws_like" in r:
        lines += _aws_like(r)
    if "many" in r:
        lines += _many(r)
    if "plain" in r:
        lines += _plain(r)
    if "floor" in r:
        lines += _floor(r)
    return "\n".join(lines) + "\n"
