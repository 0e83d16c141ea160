"""Checks of the target group."""

from __future__ import annotations

from types import SimpleNamespace

from vpclink_runbooks.checks.facts import (
    _exposed,
    _primary_tg,
)
from vpclink_runbooks.checks.inventory import Inventory
from vpclink_runbooks.checks.registry import Result, check
from vpclink_runbooks.steps.load_balancer import health_check_drift

# -- target group --

@check(id="target_group.exists", hop="target_group", severity="error", repaired_by="nlb",
       remedy="create the target group")
@check(id="target_group.port", hop="target_group", severity="error", repaired_by=None,
       remedy="a target group's port and type cannot change: destroy and apply again")
def target_group_port(inv: Inventory) -> Result:
    """The target group is TCP on the fixed host port with instance targets."""
    tg = _primary_tg(inv)
    p = inv.params
    if tg is None:
        return Result("target_group.exists", "target_group", "fail",
                      f"no target group {inv.names.target_group(p.target_port)}",
                      "create the target group (repair does)")
    protocol = "HTTP" if p.nlb.type == "application" else "TCP"
    ok = (tg["Protocol"] == protocol and tg["Port"] == p.target_port
          and tg["TargetType"] == ("ip" if p.awsvpc else "instance"))
    return Result("target_group.port", "target_group", "pass" if ok else "fail",
                  f"{tg['TargetGroupName']} {tg['Protocol']} :{tg['Port']} {tg['TargetType']} targets",
                  "" if ok else "a target group's port and type cannot change: destroy and apply again")


@check(id="target_group.health_check", hop="target_group", severity="error", repaired_by="nlb",
       remedy="set the health check's port, protocol and path back to what the runbook sets")
def target_group_health_check(inv: Inventory) -> list[Result]:
    """Each target group's health-check port, protocol and path are what the runbook set."""
    ctx = SimpleNamespace(params=inv.params)
    names = {inv.names.target_group(port.host_port) for port in _exposed(inv)}
    out = []
    for tg in (t for t in inv.target_groups if t["TargetGroupName"] in names):
        drift = health_check_drift(ctx, tg)
        if not drift:
            out.append(Result("target_group.health_check", "target_group", "pass",
                              f"{tg['TargetGroupName']} health check {tg.get('HealthCheckProtocol')} on "
                              f"{tg.get('HealthCheckPort')}" + (f" {tg['HealthCheckPath']}"
                                                                if tg.get("HealthCheckProtocol") != "TCP" else "")))
            continue
        changed = ", ".join(f"{k.removeprefix('HealthCheck')} {cur} (runbook sets {want})"
                            for k, (cur, want) in drift.items())
        out.append(Result("target_group.health_check", "target_group", "fail",
                          f"{tg['TargetGroupName']} health check differs: {changed}",
                          "the NLB judges targets by a check the runbook did not set: `runbook repair --yes` "
                          "sets it back"))
    return out

