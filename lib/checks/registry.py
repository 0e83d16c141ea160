"""The check registry: each check declares, next to its code, the ids it emits with their hop, severity,
remedy and the repair step that fixes them; a Result whose id no check declared is refused when it is made."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vpclink_runbooks.checks.inventory import Inventory

# The hops in request order; the first failing one is the verdict. Aligned with diagram.HOP_IDS
# (which adds "domain", the planned-path box for the custom domain itself).
HOPS = ["mapping", "stage", "integration", "vpc_link", "nlb", "listener", "target_group", "targets",
        "task_definition", "security_group", "service", "endpoint"]
# What a failure of the check means (the verdict still names the first failing hop, whatever its severity).
SEVERITIES = {
    "error": "requests fail, or will fail at the next change of the chain",
    "warn": "a risk or a limit: requests still reach the service",
}


class UndeclaredCheck(AssertionError):
    """A Result with an id (or hop) no check declared: declare it with @check next to the code that emits it."""


@dataclass(frozen=True)
class Declaration:
    """One check id as its check declares it; `id` may hold a field, e.g. "listener.{port}"."""

    id: str
    hop: str
    severity: str
    remedy: str  # what fixes a failure, in general (the Result's remedy says it with the live names)
    repaired_by: str | None  # the repair step that converges it; None: not the runbook's to change (explained)
    check: str  # the check function that emits it

    @property
    def pattern(self) -> re.Pattern:
        parts = re.split(r"\{[a-z_]+\}", self.id)
        return re.compile("[A-Za-z0-9_-]+".join(re.escape(p) for p in parts) + r"\Z")

    def matches(self, check_id: str) -> bool:
        return self.pattern.match(check_id) is not None


DECLARED: dict[str, Declaration] = {}


def declaration(check_id: str) -> Declaration:
    """The declaration of a (concrete) check id; UndeclaredCheck when no check declared it."""
    found = DECLARED.get(check_id) or next((d for d in DECLARED.values() if d.matches(check_id)), None)
    if found is None:
        raise UndeclaredCheck(f"no check declares id {check_id!r}: add @check(id={check_id!r}, ...) to the check "
                              "that emits it")
    return found


class RepairedBy(Mapping):
    """Check id (declared or concrete, e.g. listener.10000) -> the repair step that fixes it, or None."""

    def __getitem__(self, check_id: str) -> str | None:
        try:
            return declaration(check_id).repaired_by
        except UndeclaredCheck:
            raise KeyError(check_id) from None

    def __iter__(self) -> Iterator[str]:
        return iter(DECLARED)

    def __len__(self) -> int:
        return len(DECLARED)


REPAIRED_BY = RepairedBy()


# ---- checks: pure functions of the inventory ----------------------------------------------------------
# A check fails only for a fault on its own hop. When what it sees follows from a fault another check
# reports (targets unused because no listener forwards to their group, targets on a port because the task
# definition changed), it says `warn` and names that check, so the verdict names the hop to fix.

@dataclass
class Result:
    id: str
    hop: str
    status: str  # pass | fail | warn | skip
    detail: str
    remedy: str = ""

    def __post_init__(self) -> None:
        declared = declaration(self.id)
        if declared.hop != self.hop:
            raise UndeclaredCheck(f"{self.id} is declared on hop {declared.hop!r}, emitted on {self.hop!r}")
        if self.status not in ("pass", "fail", "warn", "skip"):
            raise ValueError(f"{self.id}: status {self.status!r} is not pass, fail, warn or skip")


CHECKS: list[Callable[[Inventory], list[Result]]] = []


def check(*, id: str, hop: str, severity: str, remedy: str, repaired_by: str | None) -> Callable:
    """Declare one id a check emits (stack one @check per id); the check runs once, in the order registered."""
    if hop not in HOPS or severity not in SEVERITIES or not remedy:
        raise ValueError(f"check {id}: hop {hop!r} must be one of HOPS, severity one of {list(SEVERITIES)}, "
                         "and the remedy said")
    if id in DECLARED:
        raise ValueError(f"check id {id} is declared twice ({DECLARED[id].check})")

    def register(fn: Callable) -> Callable:
        runner = fn if hasattr(fn, "declares") else _runner(fn)
        DECLARED[id] = Declaration(id, hop, severity, remedy, repaired_by, runner.__name__)
        runner.declares.insert(0, id)
        return runner

    return register


def _runner(fn: Callable[[Inventory], list[Result] | Result]) -> Callable[[Inventory], list[Result]]:
    def run(inv: Inventory) -> list[Result]:
        out = fn(inv)
        out = out if isinstance(out, list) else [out]
        for result in out:
            if declaration(result.id).check != run.__name__:
                raise UndeclaredCheck(f"{run.__name__} emitted {result.id}, which {run.__name__} does not declare")
        return out

    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    run.declares = []
    CHECKS.append(run)
    return run
