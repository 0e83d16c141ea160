"""Repair: plan fixes for the failed checks the runbook owns, make them in repair mode, explain the rest.

The fixes are the step modules' own converge functions (each converges its resources to the params), run
only for the steps that own a failed check, in request-path dependency order, plus the one fix no step
has: registering running tasks that are missing from the target group. What the runbook does not own (a
stopped cluster instance, another team's rule or API, quotas) is explained in a row with action `none`
and never touched.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field, replace

from vpclink_runbooks import checks
from vpclink_runbooks.checks import Inventory, Result
from vpclink_runbooks.context import Context
from vpclink_runbooks.errors import PreflightRefused
from vpclink_runbooks.plan import Plan, Row
from vpclink_runbooks.steps import api as routes
from vpclink_runbooks.steps import ecs_service
from vpclink_runbooks.steps import load_balancer as loadbalancer
from vpclink_runbooks.steps import vpc_link as vpclink
from vpclink_runbooks.steps.inspect import discover
from vpclink_runbooks.steps.registry import repair_dependants, repair_order

PERMISSIONS = ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets",
               "elasticloadbalancing:DescribeTargetHealth"]
# Steps in the order apply runs them; a later step reads what an earlier one made (the step registry's repair
# names: nlb, vpc_link, ecs, targets, api).
STEPS = repair_order()
# Which step converges the resource a check guards; None: not the runbook's to change (explained).
# Read from each check's declaration (@check(..., repaired_by=...) next to its code in checks/).
OWNER = checks.REPAIRED_BY
# A step whose resources another step refers to: the dependants converge after it (a recreated VPC link
# has a new id the stage variable must name; a new target group has an ARN the service must use).
# From the registry's `follows`: {"nlb": ["ecs", "api"], "vpc_link": ["api"]}.
DEPENDANTS = repair_dependants()


def owner(result: Result) -> str | None:
    """The repair step its check declares `repaired_by` (None: explained, not changed)."""
    return checks.declaration(result.id).repaired_by


@dataclass
class Repair:
    """The repair of one verify: rows (resource, action, current, desired, why) and whether they were applied."""

    applied: bool
    rows: list[Row] = field(default_factory=list)
    failed: list[Result] = field(default_factory=list)

    @property
    def changes(self) -> list[Row]:
        return [r for r in self.rows if r.action != "none"]

    def frame(self):
        plan = Plan(apply=False, rows=self.rows)
        return plan.frame()


def _plan_ctx(ctx: Context) -> Context:
    """Only mode "repair" changes anything; every other mode of the verify notebook plans."""
    return ctx if ctx.mode == "repair" else replace(ctx, mode="plan")


def repair(ctx: Context, inv: Inventory, results: list[Result]) -> Repair:
    """Plan (and in mode "repair", make) the fixes for the failed checks; explain what is not ours."""
    work = _plan_ctx(ctx)
    out = Repair(applied=work.mode == "repair", failed=checks.failed(results))
    if not out.failed:
        out.rows.append(Row("chain", "none", "all checks pass", "-", "nothing to repair"))
        return out
    by_step: dict[str, list[Result]] = {}
    for result in out.failed:
        step = owner(result)
        if step == "api" and result.id == "mapping.target" and not _mapping_is_ours(ctx, inv):
            step = None
        if step is None:
            out.rows.append(Row(f"{result.hop}: {result.id}", "none", result.detail, "-",
                                f"not the runbook's to change: {result.remedy}"))
            continue
        by_step.setdefault(step, []).append(result)
    selected = set(by_step)
    for step in list(selected):
        selected.update(DEPENDANTS.get(step, []))
    world = inv.world
    changed = False
    for step in [s for s in STEPS if s in selected]:
        fixes = by_step.get(step, [])
        if changed and out.applied and step in ("ecs", "targets"):
            # what an earlier step changed (subnets, target groups, tasks) is read again, not assumed
            world = discover(work)
            inv = checks.fetch(work, probe=False)
        rows = _run_step(work, step, world, inv, fixes)
        changes = [r for r in rows if r.action != "none"]
        if fixes and not changes:
            ids = ", ".join(r.id for r in fixes)
            rows.append(Row(f"step {step}", "none", "; ".join(r.detail for r in fixes), "-",
                            f"{ids}: converging finds nothing to change; {fixes[0].remedy}"))
        out.rows += [r for r in rows if r.action != "none" or r.resource.startswith("step ")]
        changed = changed or bool(changes)
        if step == "vpc_link" and changes and not out.applied:
            out.rows += _stage_follows_new_link(inv)
    return out


def _mapping_is_ours(ctx: Context, inv: Inventory) -> bool:
    if inv.mapping is None:
        return True
    if inv.api and inv.mapping["restApiId"] == inv.api["id"]:
        return True
    return routes.find_rest_api_by_id(ctx, inv.mapping["restApiId"])


def _annotate(rows: list[Row], fixes: list[Result]) -> list[Row]:
    if not fixes:
        return rows
    ids = ", ".join(r.id for r in fixes)
    return [replace(r, why=f"{r.why} (fixes {ids})") if r.action != "none" else r for r in rows]


def _run_step(ctx: Context, step: str, world, inv: Inventory, fixes: list[Result]) -> list[Row]:
    apply = ctx.mode == "repair"
    try:
        if step == "nlb":
            plan = loadbalancer.converge(ctx, world)
            if apply and plan.changes:
                loadbalancer.wait_active(ctx)
        elif step == "vpc_link":
            plan = vpclink.converge(ctx)
            if apply and plan.changes:
                vpclink.wait_available(ctx)
        elif step == "ecs":
            plan = ecs_service.converge(ctx, world)
            if apply and plan.changes:
                ecs_service.wait_stable(ctx)
                ecs_service.wait_targets_healthy(ctx)
        elif step == "targets":
            plan = sync_targets(ctx, inv)
            if apply and plan.changes:
                ecs_service.wait_targets_healthy(ctx)
        else:
            plan = routes.converge(ctx)
    except PreflightRefused as exc:
        # e.g. the service cannot be placed while an instance is stopped: say so, change nothing more
        return [Row(f"step {step}", "none", "-", "-", f"refused: {exc}")]
    return _annotate(plan.rows, fixes)


def sync_targets(ctx: Context, inv: Inventory) -> Plan:
    """Register running tasks of ours missing from the target group; deregister targets on another port.

    ECS registers a task when it starts; a target deregistered by hand stays out until the task is
    replaced. Registering instance:hostPort of the running task is the in-place fix.
    """
    plan = Plan(apply=ctx.mode == "repair")
    p = ctx.params
    tg = next((t for t in inv.target_groups if t["TargetGroupName"] == ctx.names.target_group(p.target_port)),
              None)
    if tg is None:
        return plan
    descs = inv.health.get(tg["TargetGroupArn"], [])
    registered = {(d["Target"]["Id"], d["Target"].get("Port")) for d in descs
                  if d["TargetHealth"]["State"] != "draining"}
    serving = checks.serving_targets(inv)
    for instance_id, port in sorted(serving - registered):
        if plan.add(f"target {instance_id}:{port} in {tg['TargetGroupName']}", "create", "not registered",
                    "registered", "a running task of ours listens there; the NLB only sends traffic to targets"):
            ctx.aws.elbv2.register_targets(TargetGroupArn=tg["TargetGroupArn"],
                                           Targets=[{"Id": instance_id, "Port": port}])
    stray = sorted((i, port) for i, port in registered if p.fixed_host_port and port != p.service.host_port
                   and (i, port) not in serving)
    for instance_id, port in stray:
        if plan.add(f"target {instance_id}:{port} in {tg['TargetGroupName']}", "delete", "registered", None,
                    f"no task of ours listens on {port}; only instance:{p.service.host_port} targets belong here"):
            ctx.aws.elbv2.deregister_targets(TargetGroupArn=tg["TargetGroupArn"],
                                             Targets=[{"Id": instance_id, "Port": port}])
    return plan


def _stage_follows_new_link(inv: Inventory) -> list[Row]:
    current = (inv.stage or {}).get("variables", {}).get(routes.STAGE_VARIABLE)
    return [Row(f"stage {inv.params.api.stage} variable {routes.STAGE_VARIABLE}", "update", current,
                "(the new VPC link's id)", "the recreated link gets a new id; the stage variable must name it")]


@dataclass
class After:
    """The chain after the repair: verified again when something changed, else the first verify stands."""

    inventory: Inventory
    results: list[Result]
    reverified: bool
    note: str

    @property
    def verdict(self) -> checks.Verdict:
        return checks.verdict(self.results)

    def __repr__(self) -> str:
        text = f"{self.note}\n{self.verdict!r}"
        if self.reverified:
            text += "\n" + checks.table(self.results).to_string(index=False)
        return text

    def _repr_html_(self) -> str:
        parts = [f"<p><b>{html.escape(self.note)}</b></p>", self.verdict._repr_html_()]
        if self.reverified:
            from vpclink_runbooks.present import pathview
            from vpclink_runbooks.present.report import styled

            parts += [pathview.live(self.inventory, self.results)._repr_html_(),
                      styled(checks.table(self.results)).to_html()]
        return "".join(parts)


def verify_again(ctx: Context, done: Repair, inv: Inventory, results: list[Result]) -> After:
    """After a repair that changed something, fetch the chain again and rerun every check."""
    if not done.applied:
        return After(inv, results, False, f"mode {ctx.mode}: nothing was changed; the verdict above stands. "
                     "Run `runbook repair ENV --yes` (mode \"repair\") to make the planned fixes.")
    if not done.changes:
        return After(inv, results, False, "repair changed nothing (the failures left are not the runbook's to "
                     "change; see the rows above); the verdict above stands")
    fresh = checks.fetch(ctx)
    return After(fresh, checks.run_checks(fresh), True,
                 f"verified again after {len(done.changes)} change(s)")
