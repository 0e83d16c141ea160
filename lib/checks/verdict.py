"""The results: ordering, the first broken hop, the verdict, the table and the record."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import pandas as pd

from vpclink_runbooks.checks.inventory import Inventory
from vpclink_runbooks.checks.registry import CHECKS, HOPS, Result
from vpclink_runbooks.context import record as record_for_runner

# ---- results ---------------------------------------------------------------------------------------------

def run_checks(inv: Inventory) -> list[Result]:
    return [result for fn in CHECKS for result in fn(inv)]


def table(results: list[Result]) -> pd.DataFrame:
    return pd.DataFrame([r.__dict__ for r in results], columns=["id", "hop", "status", "detail", "remedy"])


def failed(results: list[Result]) -> list[Result]:
    return [r for r in results if r.status == "fail"]


def first_broken_hop(results: list[Result]) -> str | None:
    broken = {r.hop for r in failed(results)}
    return next((hop for hop in HOPS if hop in broken), None)


@dataclass
class Verdict:
    """The one line an operator reads first: verified, or the first broken hop with what to do."""

    ok: bool
    headline: str
    hop: str | None = None
    detail: str = ""
    remedy: str = ""
    others: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.ok:
            return self.headline
        return f"{self.headline}: {self.detail}. Remedy: {self.remedy}"

    def __repr__(self) -> str:
        lines = [str(self)] + [f"  also failing: {o}" for o in self.others]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour, fill = ("#137333", "#e6f4ea") if self.ok else ("#a50e0e", "#fce8e6")
        body = [f'<div style="font-size:1.35em;font-weight:bold">{html.escape(self.headline)}</div>']
        if self.detail:
            body.append(f'<div style="margin-top:6px">{html.escape(self.detail)}</div>')
        if self.remedy:
            body.append(f'<div style="margin-top:6px"><b>Remedy:</b> {html.escape(self.remedy)}</div>')
        if self.others:
            items = "".join(f"<li>{html.escape(o)}</li>" for o in self.others)
            body.append(f'<div style="margin-top:6px">Also failing:<ul style="margin:2px 0">{items}</ul></div>')
        return (f'<div class="vpclink-verdict" style="border:3px solid {colour};background:{fill};color:{colour};'
                f'padding:12px 16px;border-radius:8px;margin:4px 0">{"".join(body)}</div>')


def verdict(results: list[Result]) -> Verdict:
    bad = failed(results)
    if not bad:
        skipped = [r for r in results if r.status == "skip"]
        warned = sum(r.status == "warn" for r in results)
        notes = f"{len(skipped)} skipped" + (f", {warned} warning(s)" if warned else "") + ", reasons in the table"
        return Verdict(True, f"VERIFIED: all {len(results) - len(skipped)} checks pass ({notes})")
    hop = first_broken_hop(results)
    first = next(r for r in bad if r.hop == hop)
    others = [f"{r.id} ({r.hop}): {r.detail}" for r in bad if r is not first]
    return Verdict(False, f"BROKEN at hop '{hop}' ({first.id})", hop, first.detail, first.remedy, others)


def record(results: list[Result]) -> list[dict]:
    """Hand the results to the runner (run.json `checks`: id, hop, status, detail, remedy per check), by this
    explicit call: judging and rendering (table, verdict, pathview) record nothing. (The one record fetch
    leaves is the request its probe sent, run.json `request`: the audit of an act, made when it is made.)"""
    rows = [dict(r.__dict__) for r in results]
    record_for_runner("checks", rows)
    return rows
