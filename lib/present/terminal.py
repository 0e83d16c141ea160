"""What `runbook` prints on the terminal after a run."""

from __future__ import annotations


def summary(result) -> str:
    record = result.record
    lines = [f"{record.get('command')} {record.get('environment')}: {record.get('status', '?').upper()}"
             f"  (record: {result.run_dir}/run.json)"]
    for step in record.get("steps", []):
        lines.append(f"  step  {step['status']:<10} {step['notebook']:<22} {step['seconds']:>6.1f}s")
    planned = [row for row in record.get("plan", []) if row["action"] != "none"]
    if record.get("command") == "plan" or not record.get("changes") and planned:
        lines.append(f"  planned: {len(planned)} change(s) of {len(record.get('plan', []))} row(s)")
        lines += [f"    {row['action']:<7} {row['resource'][:70]}" for row in planned[:20]]
    changes = record.get("changes", [])
    lines.append(f"  changes made: {len(changes)} mutating call(s)")
    for change in changes[:20]:
        lines.append(f"    {change['service']}.{change['operation']}  {change['resource'][:90]}")
    if len(changes) > 20:
        lines.append(f"    ... {len(changes) - 20} more in run.json")
    for check in record.get("checks", []):
        lines.append(f"  check {check['status']:<5} {check['hop']:<16} {check['id']:<24} {check['detail'][:70]}")
    if (req := record.get("request")) is not None:
        lines.append(f"  request {req.get('url')} -> {req.get('status')} in {req.get('ms')} ms, hop "
                     f"{req.get('hop')}" + (f", task {req['answered_by']}" if req.get("answered_by") else ""))
    if record.get("error"):
        lines.append(f"  error: {record['error']}")
    return "\n".join(lines)
