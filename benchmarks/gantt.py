"""A Gantt chart of one run: each step's notebook from start to end on one time line, and inside it the spans the
step spent waiting for AWS (its waiters' polls, marked "wait" in calls.jsonl) apart from its own calls.

    .venv/bin/python benchmarks/gantt.py runs/local/<run-id> benchmarks/apply-gantt.svg

Reads the run folder's run.json (each step's `started_after` and `seconds`, from the runner's start) and
calls.jsonl (each call's wall-clock `time`, `step`, and `wait` for a waiter's poll). The time line's zero is the
runner's first call (the account guard's GetCallerIdentity, made as the steps are scheduled). A step whose entry
has `converged_after` (seconds from the runner's start, like `started_after`, when its converge cell had run and
the steps that need it converged could start) gets a marker there. A wait whose polls another notebook's wait
answered (the run inventory shares them) shows only the polls it sent itself. Writes an SVG
with no dependency beyond the standard library.
"""

from __future__ import annotations

import json
import sys
from html import escape
from pathlib import Path

ROW, LEFT, WIDTH, TOP = 26, 150, 760, 40


def spans(run_dir: Path) -> list[dict]:
    """Per step: its name, start and end (s from the run's start), its wait spans [(start, end, waiter)] and, when
    the record has it, when it converged (None otherwise)."""
    record = json.loads((run_dir / "run.json").read_text())
    calls = [json.loads(line) for line in (run_dir / "calls.jsonl").read_text().splitlines() if line.strip()]
    zero = min((c["time"] for c in calls), default=0.0)
    out = []
    for step in record["steps"]:
        name = step["notebook"].removesuffix(".ipynb")
        start = float(step.get("started_after", 0.0))
        polls = sorted((c["time"] - zero, c["wait"]) for c in calls if c.get("step") == name and c.get("wait"))
        waits: list[list] = []
        for at, waiter in polls:  # consecutive polls of one waiter (a poll a second or so apart) form one span
            if waits and waits[-1][2] == waiter and at - waits[-1][1] < 30:
                waits[-1][1] = at
            else:
                waits.append([at, at, waiter])
        converged = step.get("converged_after")
        out.append({"step": name, "start": start, "end": start + float(step["seconds"]),
                    "waits": [tuple(w) for w in waits],
                    "converged": None if converged is None else float(converged)})
    return out


def _diamond(x: float, y: float, title: str) -> str:
    half = ROW // 2 - 2
    return (f'<path d="M{x:.1f} {y + 2} l5 {half} l-5 {half} l-5 -{half} z" fill="#e6550d">'
            f'<title>{escape(title)}</title></path>')


def svg(rows: list[dict], title: str) -> str:
    """The chart: one row per step, its bar (light) and its waits (dark), a time axis in seconds."""
    total = max((r["end"] for r in rows), default=1.0) or 1.0
    scale = WIDTH / total
    height = TOP + ROW * len(rows) + 50
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{LEFT + WIDTH + 20}" height="{height}" '
             f'font-family="sans-serif" font-size="12" role="img"><title>{escape(title)}</title>',
             f'<text x="10" y="20" font-size="14" font-weight="bold">{escape(title)}</text>']
    for i, row in enumerate(rows):
        y = TOP + i * ROW
        x0, x1 = LEFT + row["start"] * scale, LEFT + row["end"] * scale
        parts.append(f'<text x="10" y="{y + 15}">{escape(row["step"])}</text>')
        parts.append(f'<rect x="{x0:.1f}" y="{y + 3}" width="{max(x1 - x0, 1):.1f}" height="{ROW - 8}" '
                     f'fill="#9ecae1"><title>{escape(row["step"])}: {row["start"]:.1f}-{row["end"]:.1f} s</title>'
                     '</rect>')
        for start, end, waiter in row["waits"]:
            w0, w1 = LEFT + start * scale, LEFT + max(end, start + 0.5) * scale
            parts.append(f'<rect x="{w0:.1f}" y="{y + 7}" width="{w1 - w0:.1f}" height="{ROW - 16}" fill="#08519c">'
                         f'<title>{escape(waiter)}: {start:.1f}-{end:.1f} s</title></rect>')
        if row.get("converged") is not None:
            parts.append(_diamond(LEFT + row["converged"] * scale, y, f"{row['step']} converged at "
                                  f"{row['converged']:.1f} s"))
    axis = TOP + ROW * len(rows) + 10
    parts.append(f'<line x1="{LEFT}" y1="{axis}" x2="{LEFT + WIDTH}" y2="{axis}" stroke="#444"/>')
    step = next(s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600) if total / s <= 12)
    for tick in range(0, int(total) + 1, step):
        x = LEFT + tick * scale
        parts.append(f'<line x1="{x:.1f}" y1="{axis}" x2="{x:.1f}" y2="{axis + 4}" stroke="#444"/>'
                     f'<text x="{x:.1f}" y="{axis + 16}" text-anchor="middle">{tick}</text>')
    marker = "; diamond: the step converged" if any(r.get("converged") is not None for r in rows) else ""
    parts.append(f'<text x="{LEFT + WIDTH}" y="{axis + 32}" text-anchor="end">seconds from the start of the run; '
                 f'dark: waiting for AWS (waiter polls){marker}</text></svg>')
    return "\n".join(parts) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    run_dir, out = Path(argv[0]), Path(argv[1])
    record = json.loads((run_dir / "run.json").read_text())
    out.write_text(svg(spans(run_dir), f"runbook {record['command']} {record['environment']} ({record['run_id']})"))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
