"""The step registry: the one source of the steps' names, notebooks, order and dependencies.

One `Step` per notebook, in the order `runbook apply` runs them. The runner derives its commands' notebook order
and `NEEDS` from it (run/runner.py), repair its order and dependants (repair.py); docs/example_dag.py keeps a copy
for Airflow workers without this package, and tests/test_airflow_dag.py proves the copy equals the registry.

A step's converge and its waits are registered apart, as "module:function" names resolved only when asked for
(`resolve`), so the registry imports nothing and a scheduler can tell what a step changes from what it waits for:
a step that `needs_converged` another starts as soon as that one's converge cell (tagged `converge` in its
notebook) has run, while its waits are still polling AWS. 20_vpc_link and 30_ecs_service start while the NLB
provisions (a V1 link's converge itself waits for an active NLB: AWS FAILs a link created earlier), 40_api while
the VPC link is PENDING.
This module imports nothing of the package: steps/, repair and run/ may all read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module

_STEPS = "vpclink_runbooks.steps."


@dataclass(frozen=True)
class Step:
    """One notebook of the runbook.

    name:     the step's name, that of its module in steps/ (verify's is checks/, with repair.py)
    notebook: the notebook under notebooks/ (without .ipynb)
    needs:    names of the steps that must have succeeded before it starts (apply mode)
    needs_converged: names of the steps whose converge must have run before it starts; their waits may go on
              (the runner learns it from the notebook's cell tagged CONVERGE_TAG; Airflow, which runs a notebook
              as one task, waits for the whole step)
    converge: "module:function" names of what changes AWS (or, for inspect and verify, reads it), in order
    wait:     "module:function" names of what waits for AWS to settle after converge, in order
    repair:   repair's names for this step (run.json and repair's rows use them): the first is its converge,
              any further one a repair-only fix run right after it (targets: register running tasks)
    follows:  repair names of steps whose resources this step's resources name (a recreated load balancer
              or VPC link has a new id): when repair converges one of them, it converges this step after it
    """

    name: str
    notebook: str
    needs: tuple[str, ...] = ()
    needs_converged: tuple[str, ...] = ()
    converge: tuple[str, ...] = ()
    wait: tuple[str, ...] = ()
    repair: tuple[str, ...] = ()
    follows: tuple[str, ...] = ()


STEPS: tuple[Step, ...] = (
    Step("inspect", "00_inspect", converge=(_STEPS + "inspect:discover",)),
    Step("load_balancer", "10_nlb", needs=("inspect",),
         converge=(_STEPS + "load_balancer:converge",), wait=(_STEPS + "load_balancer:wait_active",),
         repair=("nlb",)),
    # 20_vpc_link starts while the NLB provisions: a V1 link's converge waits for an active NLB before creating it
    # (AWS FAILs a link created earlier), a V2 link needs only its subnets and group.
    Step("vpc_link", "20_vpc_link", needs_converged=("load_balancer",),
         converge=(_STEPS + "vpc_link:converge",), wait=(_STEPS + "vpc_link:wait_available",),
         repair=("vpc_link",)),
    # 30_ecs_service (task definition, rules, service) needs the target group and the NLB's group, not an active
    # NLB, nor the VPC link: it converges while the NLB provisions.
    Step("ecs_service", "30_ecs_service", needs_converged=("load_balancer",),
         converge=(_STEPS + "ecs_service:converge",),
         wait=(_STEPS + "ecs_service:wait_stable", _STEPS + "ecs_service:wait_targets_healthy"),
         repair=("ecs", "targets"), follows=("nlb",)),
    # 40_api needs the link's id (the stage variable, a V2 integration's connectionId), not an AVAILABLE link, and
    # does not wait for the service to stabilise: it converges while the link is PENDING.
    Step("api", "40_api", needs_converged=("vpc_link",), converge=(_STEPS + "api:converge",),
         repair=("api",), follows=("nlb", "vpc_link")),
    Step("verify", "50_verify", needs=("inspect", "load_balancer", "vpc_link", "ecs_service", "api"),
         converge=("vpclink_runbooks.checks:fetch", "vpclink_runbooks.checks:run_checks")),
    Step("destroy", "90_destroy",
         converge=tuple(_STEPS + "destroy:" + f for f in (
             "remove_api", "scale_down_service", "remove_service", "deregister_task_definitions",
             "revoke_security_group_rules", "remove_vpc_links", "remove_load_balancer", "remove_security_groups")),
         wait=tuple(_STEPS + "destroy:" + f for f in (
             "wait_service_drained", "wait_service_gone", "wait_vpc_links_gone", "wait_load_balancer_gone",
             "wait_rest_apis_gone"))),
)
BY_NAME: dict[str, Step] = {s.name: s for s in STEPS}
# The tag of the notebook cell that runs a step's converge: once it has run, steps that need it converged start.
CONVERGE_TAG = "converge"
BY_NOTEBOOK: dict[str, Step] = {s.notebook: s for s in STEPS}

# The steps that bracket the chain: inspect reads the world first, verify checks the path last, destroy runs alone.
INSPECT, VERIFY, DESTROY = BY_NAME["inspect"], BY_NAME["verify"], BY_NAME["destroy"]
# The steps apply converges, in order: what verify needs after inspect.
CHAIN: tuple[Step, ...] = tuple(s for s in STEPS if s.name in VERIFY.needs and s is not INSPECT)


def step(name: str) -> Step:
    return BY_NAME[name]


def needs_by_notebook(steps: tuple[Step, ...] = STEPS) -> dict[str, tuple[str, ...]]:
    """{notebook: notebooks that must have succeeded first} of the given steps (the runner's NEEDS)."""
    return {s.notebook: tuple(BY_NAME[n].notebook for n in s.needs) for s in steps}


def needs_converged_by_notebook(steps: tuple[Step, ...] = STEPS) -> dict[str, tuple[str, ...]]:
    """{notebook: notebooks whose converge must have run first} of the given steps (the runner's NEEDS_CONVERGED)."""
    return {s.notebook: tuple(BY_NAME[n].notebook for n in s.needs_converged) for s in steps}


def whole_needs_by_notebook(steps: tuple[Step, ...] = STEPS) -> dict[str, tuple[str, ...]]:
    """{notebook: every notebook it waits for, whole}: where a notebook is one task (Airflow), a step that needs
    another converged waits for all of it."""
    return {s.notebook: tuple(BY_NAME[n].notebook for n in (*s.needs_converged, *s.needs)) for s in steps}


def repair_order() -> list[str]:
    """Repair's steps in the order apply runs them (a later step reads what an earlier one made)."""
    return [name for s in STEPS for name in s.repair]


def repair_dependants() -> dict[str, list[str]]:
    """{repair step: the repair steps that converge after it}, from each step's `follows`."""
    out: dict[str, list[str]] = {}
    for s in STEPS:
        for upstream in s.follows:
            out.setdefault(upstream, []).append(s.repair[0])
    return out


def resolve(ref: str):
    """The function a "module:function" name of the registry names (imports its module now)."""
    module, _, function = ref.partition(":")
    return getattr(import_module(module), function)
