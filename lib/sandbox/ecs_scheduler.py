"""The ECS service scheduler moto lacks: placement, task start/stop, rolling deployments (see ecs.py)."""

from __future__ import annotations

import math
import uuid
from typing import Any

from . import ecs_tasks, elbv2
from .base import _CFG, _ORIG, LOCK, _ec2, _elbv2, _now, _utcnow
from .ecs_placement import (
    FARGATE,
    attach_task_eni,
    instance_running,
    live_tasks_on,
    place,
    remaining,
    used_ports,
)

# ---- scheduler helpers ----------------------------------------------------------------------


def _sb(service: Any) -> dict[str, Any]:
    sb = getattr(service, "_sbx", None)
    if sb is None:
        dep = service.deployments[0] if service.deployments else None
        sb = {
            "tasks": [],
            "primary_id": dep["id"] if dep else f"ecs-svc/{uuid.uuid4().int % 10**19}",
            "primary_td": service.task_definition,
            "unplaced_msg": None,
            "steady": False,
        }
        if not service.deployments:
            service.deployments = [_new_deployment(service, sb["primary_id"])]
        service._sbx = sb
        if not hasattr(service, "deployment_configuration"):
            service.deployment_configuration = {"maximumPercent": 200, "minimumHealthyPercent": 100}
        if not hasattr(service, "placement_constraints"):
            service.placement_constraints = []
    return sb


def _new_deployment(service: Any, dep_id: str) -> dict[str, Any]:
    now = _utcnow()
    return {
        "id": dep_id,
        "status": "PRIMARY",
        "taskDefinition": service.task_definition,
        "desiredCount": service.desired_count,
        "pendingCount": 0,
        "runningCount": 0,
        "failedTasks": 0,
        "createdAt": now,
        "updatedAt": now,
        "launchType": service.launch_type or "EC2",
        "rolloutState": "IN_PROGRESS",
        "rolloutStateReason": f"ECS deployment {dep_id} in progress.",
    }


def event(service: Any, message: str) -> None:
    service.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": _utcnow(), "message": message})
    del service.events[100:]


def _target_of(task: Any, lb: dict[str, Any]) -> tuple[str, int] | None:
    """(target id, port) a task registers for a service load balancer: its IP (awsvpc) or instance + host port."""
    if getattr(task, "_sbx_ip", None):
        return task._sbx_ip, int(lb.get("containerPort") or 0)
    port = _binding_for(task, lb)
    return (task._sbx_ec2_id, port) if port else None


def _start_task(ecs: Any, service: Any, td: Any, ci: Any, bindings: list[dict[str, Any]], dep_id: str) -> Any:
    from moto.ecs.models import Cluster  # noqa: F401 - typing only

    SteadyTask = _ORIG["SteadyTask"]
    SchedContainer = _ORIG["SchedContainer"]
    cluster = ecs.clusters[service.cluster_name]
    fargate = ci is FARGATE
    live = [t for t in _sb(service)["tasks"] if t.desired_status == "RUNNING"]
    task = SteadyTask(
        cluster,
        td,
        None if fargate else ci.container_instance_arn,
        ecs._calculate_task_resource_requirements(td),
        backend=ecs,
        group=f"service:{service.name}",
        launch_type="FARGATE" if fargate else "EC2",
        started_by=dep_id,
        networking_configuration=getattr(service, "network_configuration", None) or None,
    )
    task._sbx_created = _now()
    task._sbx_stopped_at = None
    task._sbx_bindings = bindings
    task._sbx_service = service
    task._sbx_deployment = dep_id
    task._sbx_registered = False
    task._sbx_ec2_id = None if fargate else ci.ec2_instance_id
    task.created_at = _utcnow()
    task.availability_zone = None if fargate else ci.attributes.get("ecs.availability-zone")
    if td.network_mode == "awsvpc":
        attach_task_eni(ecs, service, task, task.availability_zone, live)
    task.containers = [SchedContainer(task, td, c, bindings) for c in td.container_definitions]
    ecs_tasks.mark(ecs, task, td, fargate)
    ecs.tasks.setdefault(cluster.name, {})[task.task_arn] = task
    _sb(service)["tasks"].append(task)
    return task


def _binding_for(task: Any, lb: dict[str, Any]) -> int | None:
    for b in task._sbx_bindings:
        if int(b["containerPort"]) == int(lb.get("containerPort") or 0) and (
            not lb.get("containerName") or lb["containerName"] == b["containerName"]
        ):
            return int(b["hostPort"])
    return None


def stop_task(ecs: Any, task: Any, reason: str, code: str = "ServiceSchedulerInitiated") -> None:
    if task.desired_status == "STOPPED":
        return
    task.desired_status = "STOPPED"
    task._sbx_stopped_at = _now()
    task.stopped_reason = reason
    task.stop_code = code
    task.stopped_at = _utcnow()
    service = getattr(task, "_sbx_service", None)
    if service is not None and task._sbx_registered:
        elb = _elbv2(ecs.account_id, ecs.region_name)
        for lb in service.load_balancers or []:
            tg = elb.target_groups.get(lb.get("targetGroupArn"))
            target = _target_of(task, lb)
            if tg is not None and target:
                elbv2.tg_remove(tg, elbv2.tkey(*target))
        task._sbx_registered = False
    if getattr(task, "_sbx_eni", None):
        try:
            _ec2(ecs.account_id, ecs.region_name).delete_network_interface(task._sbx_eni)
        except Exception:  # noqa: BLE001 - already gone
            pass
        task._sbx_eni = None


def reconcile(ecs: Any) -> None:
    """Advance every service of this ECS backend to what ECS would show now."""
    with LOCK:
        for service in list(ecs.services.values()):
            try:
                _reconcile_service(ecs, service)
            except Exception:  # noqa: BLE001 - keep the API up; the service just does not converge
                import logging

                logging.getLogger(__name__).exception("sandbox scheduler failed for %s", service.name)
        _refresh_instances(ecs)


def _reconcile_service(ecs: Any, service: Any) -> None:
    sb = _sb(service)
    primary = _primary_deployment(service, sb)
    dc = getattr(service, "deployment_configuration", None) or {}
    limits = int(dc.get("maximumPercent", 200)), int(dc.get("minimumHealthyPercent", 100))
    active = service.status == "ACTIVE"
    td = None
    if service.task_definition:
        try:
            td = ecs.describe_task_definition(service.task_definition)
        except Exception:  # noqa: BLE001
            td = None
    for _ in range(200):
        if not _converge_step(ecs, service, sb, primary, td, active, limits):
            break
    live = [t for t in sb["tasks"] if t.desired_status == "RUNNING"]
    keep = _count_deployments(service, primary, live, active)
    _settle(service, sb, primary, keep, active)
    ecs_tasks.finish_draining(service, sb, live, _now(), _CFG.task_start)
    # prune long-stopped tasks from the scheduler's working set (they stay describable)
    sb["tasks"] = [t for t in sb["tasks"] if t.desired_status == "RUNNING" or _now() - t._sbx_stopped_at < 3600]


def _primary_deployment(service: Any, sb: dict[str, Any]) -> dict[str, Any]:
    """The service's PRIMARY deployment; a new one when its task definition changed or force_new_deployment
    renamed it (the old one turns ACTIVE)."""
    if service.deployments and service.deployments[0].get("status") == "PRIMARY":
        primary = service.deployments[0]
    else:
        primary = _new_deployment(service, sb["primary_id"])
        service.deployments.insert(0, primary)
    # a new deployment: task definition changed, or force_new_deployment renamed the primary
    if service.task_definition != sb["primary_td"] or primary["id"] != sb["primary_id"]:
        old = dict(primary)
        old["id"] = sb["primary_id"]
        old["taskDefinition"] = sb["primary_td"]
        old["status"] = "ACTIVE"
        new_id = primary["id"] if primary["id"] != sb["primary_id"] else f"ecs-svc/{uuid.uuid4().int % 10**19}"
        new = _new_deployment(service, new_id)
        service.deployments = [new, old] + [d for d in service.deployments if d is not primary]
        sb["primary_id"], sb["primary_td"] = new_id, service.task_definition
        sb["steady"] = False
        sb["unplaced_msg"] = None
        sb["fail_streak"], sb["next_start"] = 0, 0  # a new task definition ends the throttle (ECS docs)
        primary = new
    return primary


def _converge_step(ecs: Any, service: Any, sb: dict[str, Any], primary: dict[str, Any], td: Any, active: bool,
                   limits: tuple[int, int]) -> bool:
    """One scheduler action (stop a surplus task, start one, or stop an old deployment's); False when none is due."""
    _drop_lost_tasks(ecs, sb)
    ecs_tasks.fail_due(ecs, service, sb, [t for t in sb["tasks"] if t.desired_status == "RUNNING"], _CFG.task_start)
    live = [t for t in sb["tasks"] if t.desired_status == "RUNNING"]
    _register_running(ecs, service, live)
    maxp, minp = limits
    desired = int(service.desired_count or 0) if active else 0
    new = [t for t in live if t._sbx_deployment == primary["id"]]
    old = [t for t in live if t._sbx_deployment != primary["id"]]
    running = [t for t in live if t.last_status == "RUNNING"]
    max_total = max(desired * maxp // 100, desired if maxp >= 100 else 0)
    min_running = math.ceil(desired * minp / 100)
    if len(new) > desired:
        victim = sorted(new, key=lambda t: (t.last_status == "RUNNING", -t._sbx_created))[0]
        stop_task(ecs, victim, f"Scaling activity initiated by (deployment {primary['id']})")
        event(service, f"(service {service.name}) has stopped 1 running tasks: (task {victim.id}).")
        return True
    wanted = active and td is not None and len(new) < desired and len(live) < max_total
    if _start_one(ecs, service, sb, primary, td, live, wanted):
        return True
    return _stop_old(ecs, service, primary, old, running, min_running)


def _drop_lost_tasks(ecs: Any, sb: dict[str, Any]) -> None:
    """Tasks on terminated instances / deregistered container instances are gone."""
    ec2 = _ec2(ecs.account_id, ecs.region_name)
    live = [t for t in sb["tasks"] if t.desired_status == "RUNNING"]
    for t in live:
        if t._sbx_ec2_id is None:
            continue  # Fargate: no instance to lose
        inst = ec2.get_instance_by_id(t._sbx_ec2_id)
        if inst is None or inst.state in ("terminated", "shutting-down"):
            stop_task(ecs, t, f"Host EC2 (instance {t._sbx_ec2_id}) terminated.", "TerminationNotice")


def _register_running(ecs: Any, service: Any, live: list[Any]) -> None:
    """Register running tasks in the load balancers' target groups."""
    elb = _elbv2(ecs.account_id, ecs.region_name)
    for t in live:
        if t.last_status == "RUNNING" and not t._sbx_registered:
            for lb in service.load_balancers or []:
                tg = elb.target_groups.get(lb.get("targetGroupArn"))
                target = _target_of(t, lb)
                if tg is not None and target:
                    elbv2.tg_add(tg, target[0], target[1], t._sbx_created + _CFG.task_start)
                    event(service, f"(service {service.name}) registered 1 targets in (target-group {tg.arn})")
            t._sbx_registered = True


def _start_one(ecs: Any, service: Any, sb: dict[str, Any], primary: dict[str, Any], td: Any, live: list[Any],
               wanted: bool) -> bool:
    """Start one task of the primary deployment when `wanted` and possible; else say why not (once)."""
    why_not = ecs_tasks.blocked(ecs, service, sb, td, _now()) if wanted else None
    if why_not and why_not != sb["unplaced_msg"]:
        sb["unplaced_msg"] = why_not
        event(service, why_not)
    if wanted and why_not is None:
        ci, bindings = place(ecs, service, td, live)
        if ci is not None:
            t = _start_task(ecs, service, td, ci, bindings, primary["id"])
            event(service, f"(service {service.name}) has started 1 tasks: (task {t.id}).")
            sb["unplaced_msg"] = None
            return True
        if bindings != sb["unplaced_msg"]:
            sb["unplaced_msg"] = bindings
            event(service, bindings)  # type: ignore[arg-type]
    return False


def _stop_old(ecs: Any, service: Any, primary: dict[str, Any], old: list[Any], running: list[Any],
              min_running: int) -> bool:
    """Stop one task of an older deployment: a pending one, else a running one if minimumHealthyPercent allows."""
    if not old:
        return False
    pending_old = [t for t in old if t.last_status != "RUNNING"]
    victim = pending_old[0] if pending_old else None
    if victim is None and len(running) - 1 >= min_running:
        victim = old[0]
    if victim is None:
        return False
    stop_task(ecs, victim, f"Scaling activity initiated by (deployment {primary['id']})")
    event(service, f"(service {service.name}) has stopped 1 running tasks: (task {victim.id}).")
    return True


def _count_deployments(service: Any, primary: dict[str, Any], live: list[Any], active: bool) -> list[dict[str, Any]]:
    """Running/pending counts of the service and its deployments; deployments with no task left (but the
    primary) are dropped. Returns the deployments kept."""
    service.running_count = sum(1 for t in live if t.last_status == "RUNNING")
    service.pending_count = sum(1 for t in live if t.last_status == "PENDING")
    keep = []
    for d in service.deployments:
        mine = [t for t in live if t._sbx_deployment == d["id"]]
        if d is not primary and not mine:
            continue
        r = sum(1 for t in mine if t.last_status == "RUNNING")
        p = len(mine) - r
        if d is primary:
            d["desiredCount"] = int(service.desired_count or 0) if active else 0
        else:
            d["desiredCount"] = len(mine)
        if (d["runningCount"], d["pendingCount"]) != (r, p):
            d["updatedAt"] = _utcnow()
        d["runningCount"], d["pendingCount"] = r, p
        keep.append(d)
    service.deployments = keep
    return keep


def _settle(service: Any, sb: dict[str, Any], primary: dict[str, Any], keep: list[Any], active: bool) -> None:
    """The primary's rolloutState, and the "has reached a steady state." event when the service gets there."""
    steady = (
        active
        and primary["runningCount"] == primary["desiredCount"]
        and primary["pendingCount"] == 0
        and len(keep) == 1
    )
    if steady:
        primary["rolloutState"] = "COMPLETED"
        primary["rolloutStateReason"] = f"ECS deployment {primary['id']} completed."
        if not sb["steady"]:
            event(service, f"(service {service.name}) has reached a steady state.")
    elif primary.get("rolloutState") != "IN_PROGRESS" and not sb["steady"]:
        primary["rolloutState"] = "IN_PROGRESS"
    sb["steady"] = steady


def _refresh_instances(ecs: Any) -> None:
    for cluster_name, cis in ecs.container_instances.items():
        for ci in cis.values():
            live = live_tasks_on(ecs, cluster_name, ci)
            ci.running_tasks_count = sum(1 for t in live if t.last_status == "RUNNING")
            ci.pending_tasks_count = sum(1 for t in live if t.last_status == "PENDING")
            ci.agent_connected = instance_running(ecs, ci)
            cpu, mem = remaining(ecs, cluster_name, ci)
            used = sorted(used_ports(ecs, cluster_name, ci))
            for r in ci.remaining_resources:
                if r.get("name") == "CPU":
                    r["integerValue"] = cpu
                elif r.get("name") == "MEMORY":
                    r["integerValue"] = mem
                elif r.get("name") == "PORTS":
                    r["stringSetValue"] = [str(p) for p in used]
    for cluster in ecs.clusters.values():
        tasks = [t for t in ecs.tasks.get(cluster.name, {}).values() if t.desired_status == "RUNNING"]
        cluster.running_tasks_count = sum(1 for t in tasks if t.last_status == "RUNNING")
        cluster.pending_tasks_count = sum(1 for t in tasks if t.last_status == "PENDING")
        cluster.active_services_count = sum(
            1 for s in ecs.services.values() if s.cluster_name == cluster.name and s.status == "ACTIVE"
        )
