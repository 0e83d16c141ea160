"""Checks of the targets in the target group."""

from __future__ import annotations

from vpclink_runbooks.checks.facts import (
    _az,
    _instance_state,
    _nlb_azs,
    _primary_tg,
    _task_host_port_wrong,
    _unadmitted,
    serving_targets,
)
from vpclink_runbooks.checks.inventory import Inventory
from vpclink_runbooks.checks.registry import Result, check

# -- targets --

@check(id="targets.registered", hop="targets", severity="error", repaired_by="targets",
       remedy="register the running tasks in the target group")
@check(id="targets.port", hop="targets", severity="error", repaired_by="targets",
       remedy="deregister targets on another port than the host port")
@check(id="targets.instances_running", hop="targets", severity="error", repaired_by=None,
       remedy="start the instance, or let its Auto Scaling group replace it")
@check(id="targets.az_enabled", hop="targets", severity="error", repaired_by="nlb",
       remedy="add a subnet of the targets' AZ to the load balancer")
@check(id="targets.healthy", hop="targets", severity="error", repaired_by=None,
       remedy="make the container answer its health check on the target port (read the task's logs)")
def targets_healthy(inv: Inventory) -> list[Result]:
    """Every running task is registered; targets are healthy, on running instances, in enabled AZs."""
    tg = _primary_tg(inv)
    if tg is None:
        return [Result("targets.registered", "targets", "skip", "no target group (see target_group.exists)")]
    descs = inv.health.get(tg["TargetGroupArn"], [])
    registered = {(d["Target"]["Id"], d["Target"].get("Port")) for d in descs
                  if d["TargetHealth"]["State"] != "draining"}
    out = [_registered(inv, tg["TargetGroupName"], registered)]
    out += _on_another_port(inv, tg["TargetGroupName"], registered)
    stopped = sorted({i for i, _ in registered if _instance_state(inv, i) != "running"})
    if stopped:
        shown = ", ".join(f"{i} ({_az(inv, i)}) is {_instance_state(inv, i)}" for i in stopped)
        out.append(Result("targets.instances_running", "targets", "fail",
                          f"{shown}: its target fails health checks",
                          "start the instance, or let its Auto Scaling group replace it; cluster instances are "
                          "not the runbook's to change"))

    outside = sorted({_az(inv, i) for i, _ in registered} - _nlb_azs(inv) - {"?"}) if inv.lb else []
    if outside:
        out.append(Result("targets.az_enabled", "targets", "fail",
                          f"targets in {outside}, where the NLB has no subnet: they stay unused (Target.NotInUse)",
                          "add a subnet of that AZ to the NLB (repair does)"))

    judged = [d for d in descs if d["TargetHealth"]["State"] != "draining"
              and _instance_state(inv, d["Target"]["Id"]) == "running"
              and _az(inv, d["Target"]["Id"]) not in outside]
    if judged:
        out.append(_health(inv, tg, judged))
    return out


def _registered(inv: Inventory, name: str, registered: set[tuple[str, int | None]]) -> Result:
    """Every running task of ours must be a target, or the NLB never sends it traffic."""
    serving = serving_targets(inv)
    if not serving:
        return Result("targets.registered", "targets", "skip", "no running task of ours (see service.running)")
    missing = sorted(serving - registered)
    if missing:
        shown = ", ".join(f"{i}:{p} ({_az(inv, i)})" for i, p in missing)
        return Result("targets.registered", "targets", "fail",
                      f"running task(s) of ours on {shown} are not registered in {name} "
                      f"({len(serving) - len(missing)}/{len(serving)} registered)",
                      "register the running tasks' instance:hostPort in the target group (repair does)")
    return Result("targets.registered", "targets", "pass", f"{len(serving)} running task(s) registered in {name}")


def _on_another_port(inv: Inventory, name: str, registered: set[tuple[str, int | None]]) -> list[Result]:
    """A target on another port: explained by a task definition that changed the host port, else a stray.
    Only a fixed host port makes "another port" wrong; dynamic ports and IP targets each have their own."""
    port = inv.params.target_port
    elsewhere = sorted((i, p) for i, p in registered if p != port) if inv.params.fixed_host_port else []
    if not elsewhere:
        return []
    shown = ", ".join(f"{i}:{p}" for i, p in elsewhere)
    if _task_host_port_wrong(inv):
        return [Result("targets.port", "targets", "warn",
                       f"targets {shown} follow the task definition's hostPort, not {port}",
                       "follows from task_definition.ports")]
    return [Result("targets.port", "targets", "fail",
                   f"targets {shown} registered in {name} on a port other than {port}",
                   f"deregister them; only instance:{port} targets belong here (repair does)")]


def _health(inv: Inventory, tg: dict, judged: list[dict]) -> Result:
    """The health of the targets that count: a fault of this hop, or a symptom another check names."""
    name, port = tg["TargetGroupName"], inv.params.target_port
    bad = [d for d in judged if d["TargetHealth"]["State"] != "healthy"]
    text = " ".join(f"{d['Target']['Id']}:{d['Target'].get('Port')} {d['TargetHealth']['State']}"
                    f" ({d['TargetHealth'].get('Reason', '')})" for d in bad)
    summary = f"{len(judged) - len(bad)}/{len(judged)} healthy"
    if not bad:
        azs = sorted({_az(inv, d["Target"]["Id"]) for d in judged})
        where = (f"port {port}" if inv.params.fixed_host_port else "IP targets" if inv.params.awsvpc
                 else "dynamic host ports")
        return Result("targets.healthy", "targets", "pass", f"{summary} on {where} in {azs}")
    if not tg.get("LoadBalancerArns"):
        return Result("targets.healthy", "targets", "warn",
                      f"{summary}: no listener forwards to {name}, so its targets are unused: {text}",
                      "follows from the listener check")
    if _unadmitted(inv):
        return Result("targets.healthy", "targets", "warn", f"{summary}: {text}",
                      "follows from security_group.nlb_subnets")
    if _task_host_port_wrong(inv) and all(d["Target"].get("Port") != port for d in bad):
        return Result("targets.healthy", "targets", "warn", f"{summary}: {text}", "follows from task_definition.ports")
    if all(d["TargetHealth"]["State"] == "initial" for d in bad):
        return Result("targets.healthy", "targets", "warn", f"{summary}: {text}",
                      "health checks are still starting; verify again in a minute")
    return Result("targets.healthy", "targets", "fail", f"{summary}: {text}",
                  f"nothing answers on port {port}: read the task's logs and check that the container "
                  f"listens on {inv.params.service.container_port}")
