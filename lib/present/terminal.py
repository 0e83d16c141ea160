"""What `runbook` prints on the terminal after a run: a verdict first, full details wrapped (never cut)."""

from __future__ import annotations

import textwrap

WIDTH = 118
SHOWN = 10  # rows of a long list shown before "... N more"


def _wrap(text: str, indent: str) -> list[str]:
    return textwrap.wrap(str(text), WIDTH, initial_indent=indent, subsequent_indent=indent + "  ",
                         break_long_words=True, break_on_hyphens=False) or [indent]


def _shorten(rows: list[str], total: int, where: str = "run.json") -> list[str]:
    return rows + ([f"    ... {total - len(rows)} more in {where}"] if total > len(rows) else [])


def not_applied(record: dict) -> bool:
    """Every `*.exists` check that ran failed: none of the runbook's resources is there (not applied, or destroyed)."""
    exists = [c for c in record.get("checks", []) if c.get("id", "").endswith(".exists") and c.get("status") != "skip"]
    return len(exists) >= 3 and all(c.get("status") == "fail" for c in exists)


def verdict(record: dict) -> list[str]:
    """The first line to read: the first broken hop with its full detail and remedy, or that the chain is healthy."""
    checks = record.get("checks", [])
    failed = [c for c in checks if c.get("status") not in ("pass", "skip", "info")]
    if failed and not_applied(record):
        env = record.get("environment")
        where = (" (this command started a fresh sandbox, which holds none of the earlier runs)"
                 if record.get("fresh_sandbox") else "")
        return _wrap(f"verdict: not applied yet: run `runbook apply {env}`; none of the runbook's resources for {env} "
                     f"exist here{where}", "")
    if failed:
        first = failed[0]
        lines = _wrap(f"verdict: broken at {first['hop']}: {first['id']}: {first.get('detail', '')}", "")
        if first.get("remedy"):
            lines += _wrap(f"remedy: {first['remedy']}", "  ")
        return lines
    if checks:
        return [f"verdict: healthy, {len(checks)} check(s) passed"]
    return []


def summary(result) -> str:
    record = result.record
    command = record.get("command")
    planned = [row for row in record.get("plan", []) if row["action"] != "none"]
    changes = record.get("changes", [])
    plan_only = record.get("plan_only", command in ("destroy", "repair") and not changes and "plan" in record)
    label = f"{command} plan" if plan_only else command
    lines = verdict(record)
    lines.append(f"{label} {record.get('environment')}: {record.get('status', '?').upper()}"
                 f"  (record: {result.run_dir}/run.json)")
    if plan_only:
        lines.append("  plan only, nothing changed; rerun with --yes to apply")
    for step in record.get("steps", []):
        lines.append(f"  step  {step['status']:<10} {step['notebook']:<22} {step['seconds']:>6.1f}s")
    if command == "plan" or not changes and planned:
        what = "planned" if command in ("plan", "apply") else f"{'destroy' if command == 'destroy' else 'repair'} plan"
        lines.append(f"  {what}: {len(planned)} change(s) of {len(record.get('plan', []))} row(s)")
        rows = [line for row in planned[:SHOWN] for line in _wrap(f"{row['action']:<7} {row['resource']}", "    ")]
        lines += _shorten(rows, len(rows) + len(planned) - min(len(planned), SHOWN))
    if command == "repair":  # what the runbook does not own: explained (its remedy), never changed
        for row in [r for r in record.get("plan", []) if r["action"] == "none" and r.get("why")]:
            lines += _wrap(f"not the runbook's to change: {row['resource']}: {row['why']}", "  ")
    lines.append(f"  changes made: {len(changes)} mutating call(s)")
    for change in changes[:SHOWN]:
        lines += _wrap(f"{change['service']}.{change['operation']}  {change['resource']}", "    ")
    if len(changes) > SHOWN:
        lines.append(f"    ... {len(changes) - SHOWN} more in run.json")
    checks = record.get("checks", [])
    counts = {status: sum(c.get("status") == status for c in checks) for status in ("pass", "fail", "skip")}
    if checks:
        lines.append(f"  checks: {counts['pass']} of {len(checks)} pass"
                     + (f", {counts['fail']} fail" if counts["fail"] else "")
                     + (f", {counts['skip']} skipped (they need what a failed one lacks)" if counts["skip"] else "")
                     + " (each in run.json and index.html)")
    for check in checks:
        if check.get("status") in ("pass", "skip"):
            continue
        lines += _wrap(f"check {check['status']:<5} {check['hop']:<16} {check['id']}: {check.get('detail', '')}", "  ")
        if check.get("remedy"):
            lines += _wrap(f"remedy: {check['remedy']}", "      ")
    if plan_only and command == "repair" and record.get("status") == "failed" and counts["fail"]:
        lines.append(f"  exit 1: the chain is still broken ({counts['fail']} failed check(s) above); "
                     "`--yes` makes the repair plan's changes, then verifies again")
    if (req := record.get("request")) is not None:
        lines += _wrap(f"request {req.get('url')} -> {req.get('status')} in {req.get('ms')} ms, hop {req.get('hop')}"
                       + (f", task {req['answered_by']}" if req.get("answered_by") else ""), "  ")
    if record.get("error") and record.get("status") == "refused":
        lines.append("  refused, nothing changed: the reason is printed above (and kept in run.json `error`)")
    elif record.get("error"):
        lines += _wrap(f"error: {record['error']}", "  ")
    return "\n".join(lines)
