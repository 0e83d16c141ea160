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


def verdict(record: dict) -> list[str]:
    """The first line to read: the first broken hop with its full detail and remedy, or that the chain is healthy."""
    checks = record.get("checks", [])
    failed = [c for c in checks if c.get("status") not in ("pass", "skip", "info")]
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
    plan_only = command in ("destroy", "repair") and not changes and "plan" in record
    label = f"{command} plan" if plan_only else command
    lines = verdict(record)
    lines.append(f"{label} {record.get('environment')}: {record.get('status', '?').upper()}"
                 f"  (record: {result.run_dir}/run.json)")
    if plan_only:
        lines.append("  plan only, nothing changed; rerun with --yes to apply")
    for step in record.get("steps", []):
        lines.append(f"  step  {step['status']:<10} {step['notebook']:<22} {step['seconds']:>6.1f}s")
    if command == "plan" or not changes and planned:
        lines.append(f"  planned: {len(planned)} change(s) of {len(record.get('plan', []))} row(s)")
        rows = [line for row in planned[:SHOWN * 2] for line in _wrap(f"{row['action']:<7} {row['resource']}", "    ")]
        lines += _shorten(rows, len(rows) + len(planned) - min(len(planned), SHOWN * 2))
    lines.append(f"  changes made: {len(changes)} mutating call(s)")
    for change in changes[:SHOWN]:
        lines += _wrap(f"{change['service']}.{change['operation']}  {change['resource']}", "    ")
    if len(changes) > SHOWN:
        lines.append(f"    ... {len(changes) - SHOWN} more in run.json")
    checks = record.get("checks", [])
    passed = [c for c in checks if c.get("status") == "pass"]
    if passed:
        lines.append(f"  checks: {len(passed)} of {len(checks)} pass (each in run.json and index.html)")
    for check in checks:
        if check.get("status") == "pass":
            continue
        lines += _wrap(f"check {check['status']:<5} {check['hop']:<16} {check['id']}: {check.get('detail', '')}", "  ")
        if check.get("remedy"):
            lines += _wrap(f"remedy: {check['remedy']}", "      ")
    if (req := record.get("request")) is not None:
        lines += _wrap(f"request {req.get('url')} -> {req.get('status')} in {req.get('ms')} ms, hop {req.get('hop')}"
                       + (f", task {req['answered_by']}" if req.get("answered_by") else ""), "  ")
    if record.get("error"):
        lines += _wrap(f"error: {record['error']}", "  ")
    return "\n".join(lines)
