"""Plan rows: what a step found and what it would do (resource, action, current, desired, why)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd

COLUMNS = ["resource", "action", "current", "desired", "why"]


@dataclass
class Row:
    resource: str
    action: str  # create | update | replace | delete | none
    current: str
    desired: str
    why: str


@dataclass
class Plan:
    """Rows of one step; in apply mode each row's mutation runs as the row is added."""

    apply: bool
    rows: list[Row] = field(default_factory=list)

    def add(self, resource: str, action: str, current: object, desired: object, why: str) -> bool:
        """Record a row; return True when the caller should perform the mutation now."""
        self.rows.append(Row(resource, action, _text(current), _text(desired), why))
        return self.apply and action != "none"

    def frame(self) -> pd.DataFrame:
        """The rows as a table (rendering only: record() is what hands them to the runner)."""
        return pd.DataFrame([asdict(r) for r in self.rows], columns=COLUMNS)

    def record(self) -> Plan:
        """Hand the rows to the runner (the run's plan.jsonl, which run.json's "plan" lists); returns the plan."""
        record(self.rows)
        return self

    @property
    def changes(self) -> list[Row]:
        return [r for r in self.rows if r.action != "none"]


def record(rows: list[Row]) -> None:
    """Append plan rows to the run's plan.jsonl, when a runner started this kernel (see context.append_record)."""
    from vpclink_runbooks.context import append_record

    append_record("plan", [asdict(r) for r in rows])


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)
