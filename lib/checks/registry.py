"""The check registry: a check's Result, and the list of checks verify runs in request order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vpclink_runbooks.checks.inventory import Inventory

# The hops in request order; the first failing one is the verdict. Aligned with diagram.HOP_IDS
# (which adds "domain", the planned-path box for the custom domain itself).
HOPS = ["mapping", "stage", "integration", "vpc_link", "nlb", "listener", "target_group", "targets",
        "task_definition", "security_group", "service", "endpoint"]


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


CHECKS: list[Callable[[Inventory], list[Result]]] = []


def check(fn: Callable[[Inventory], list[Result] | Result]) -> Callable:
    def run(inv: Inventory) -> list[Result]:
        out = fn(inv)
        return out if isinstance(out, list) else [out]

    run.__name__ = fn.__name__
    run.__doc__ = fn.__doc__
    CHECKS.append(run)
    return run

