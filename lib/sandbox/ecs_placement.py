"""Where the ECS service scheduler puts a task: container instance, host ports, awsvpc interface (see
ecs_scheduler)."""

from __future__ import annotations

import uuid
from typing import Any

from .base import DYNAMIC_PORTS, _ec2


def _task_host_ports(ecs: Any, task: Any) -> set[int]:
    bindings = getattr(task, "_sbx_bindings", None)
    if bindings is not None:
        return {int(b["hostPort"]) for b in bindings}
    try:
        td = ecs.describe_task_definition(task.task_definition_arn)
    except Exception:  # noqa: BLE001 - deregistered definition
        return set()
    return set(_fixed_ports(td))


def _fixed_ports(td: Any) -> list[int]:
    ports = []
    for cdef in td.container_definitions:
        for pm in cdef.get("portMappings") or []:
            if td.network_mode == "host":
                ports.append(int(pm.get("hostPort") or pm.get("containerPort")))
            elif td.network_mode in (None, "bridge") and int(pm.get("hostPort") or 0) > 0:
                ports.append(int(pm["hostPort"]))
    return ports


def live_tasks_on(ecs: Any, cluster: str, ci: Any) -> list[Any]:
    return [
        t
        for t in ecs.tasks.get(cluster, {}).values()
        if t.container_instance_arn == ci.container_instance_arn and t.desired_status == "RUNNING"
    ]


def _resource(resources: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((r for r in resources if r.get("name") == name), None)


def used_ports(ecs: Any, cluster: str, ci: Any) -> set[int]:
    reserved = _resource(ci.registered_resources, "PORTS") or {}
    used = {int(p) for p in reserved.get("stringSetValue", [])}
    for t in live_tasks_on(ecs, cluster, ci):
        used |= _task_host_ports(ecs, t)
    return used


def _requirements(td: Any) -> tuple[int, int]:
    cpu = sum(int(c.get("cpu") or 0) for c in td.container_definitions)
    mem = sum(int(c.get("memory") or c.get("memoryReservation") or 0) for c in td.container_definitions)
    return cpu, mem


def remaining(ecs: Any, cluster: str, ci: Any) -> tuple[int, int]:
    cpu = (_resource(ci.registered_resources, "CPU") or {}).get("integerValue", 0)
    mem = (_resource(ci.registered_resources, "MEMORY") or {}).get("integerValue", 0)
    for t in live_tasks_on(ecs, cluster, ci):
        try:
            c, mm = _requirements(ecs.describe_task_definition(t.task_definition_arn))
        except Exception:  # noqa: BLE001
            c, mm = 0, 0
        cpu -= c
        mem -= mm
    return cpu, mem


def instance_running(ecs: Any, ci: Any) -> bool:
    inst = _ec2(ecs.account_id, ecs.region_name).get_instance_by_id(ci.ec2_instance_id)
    return inst is not None and inst.state == "running"


def place(ecs: Any, service: Any, td: Any, live: list[Any]) -> tuple[Any, list[dict[str, Any]]] | tuple[None, str]:
    cluster = service.cluster_name
    prefix = (
        f"(service {service.name}) was unable to place a task because no container instance met all of its "
        "requirements."
    )
    if (service.launch_type or "EC2") == "FARGATE":
        return FARGATE, []
    cis = [ci for ci in ecs.container_instances.get(cluster, {}).values() if ci.status == "ACTIVE"]
    cis = [ci for ci in cis if instance_running(ecs, ci)]
    if not cis:
        return None, f"{prefix} Reason: No Container Instances were found in your cluster."
    ci, closest = _choose_instance(ecs, service, td, live, cis)
    if ci is None:
        ci, reason = closest  # type: ignore[misc]
        return None, (
            f"{prefix} The closest matching (container-instance {ci.id}) {reason}. For more information, see the "
            "Troubleshooting section of the Amazon ECS Developer Guide."
        )
    return ci, _host_bindings(td, used_ports(ecs, cluster, ci))


def _choose_instance(ecs: Any, service: Any, td: Any, live: list[Any], cis: list[Any]) -> tuple[Any, Any]:
    """(the instance a task goes on, or None: fewest of the service's tasks in its AZ, then on it, then of all
    tasks on it; (the first instance refused, why))."""
    cluster = service.cluster_name
    fixed = set(_fixed_ports(td))
    need_cpu, need_mem = _requirements(td)
    distinct = any(c.get("type") == "distinctInstance" for c in (service.placement_constraints or []))
    candidates = []
    closest = None
    for ci in cis:
        mine = [t for t in live if t.container_instance_arn == ci.container_instance_arn]
        reason = None
        cpu, mem = remaining(ecs, cluster, ci)
        if distinct and mine:
            reason = 'encountered error "DistinctInstance placement constraint unsatisfied."'
        elif fixed & used_ports(ecs, cluster, ci):
            reason = "is already using a port required by your task"
        elif need_mem > mem:
            reason = "has insufficient memory available"
        elif need_cpu > cpu:
            reason = "has insufficient CPU units available"
        if reason:
            closest = closest or (ci, reason)
            continue
        az = ci.attributes.get("ecs.availability-zone")
        in_az = sum(
            1
            for t in live
            for c in cis
            if c.container_instance_arn == t.container_instance_arn
            and c.attributes.get("ecs.availability-zone") == az
        )
        candidates.append(((in_az, len(mine), len(live_tasks_on(ecs, cluster, ci))), ci))
    if not candidates:
        return None, closest
    candidates.sort(key=lambda x: x[0])
    return candidates[0][1], closest


def _host_bindings(td: Any, used: set[int]) -> list[dict[str, Any]]:
    """The task's network bindings on its instance: fixed host ports, dynamic ones from DYNAMIC_PORTS not in `used`."""
    bindings = []
    next_dyn = DYNAMIC_PORTS[0]
    for cdef in td.container_definitions:
        for pm in cdef.get("portMappings") or []:
            cport = int(pm.get("containerPort"))
            if td.network_mode == "awsvpc":
                continue
            if td.network_mode == "host":
                hport = int(pm.get("hostPort") or cport)
            else:
                hport = int(pm.get("hostPort") or 0)
            if hport == 0:
                while next_dyn in used and next_dyn <= DYNAMIC_PORTS[1]:
                    next_dyn += 1
                hport = next_dyn
                used.add(hport)
            bindings.append(
                {
                    "containerName": cdef.get("name"),
                    "bindIP": "0.0.0.0",
                    "containerPort": cport,
                    "hostPort": hport,
                    "protocol": pm.get("protocol", "tcp"),
                }
            )
    return bindings


FARGATE = object()  # placement result of a Fargate task: no container instance


def _task_subnet(ecs: Any, service: Any, az: str | None, live: list[Any]) -> Any:
    """The subnet an awsvpc task's interface goes in: one of the service's subnets in the task's AZ, else the
    subnet (and so AZ) holding the fewest of the service's tasks."""
    ec2 = _ec2(ecs.account_id, ecs.region_name)
    ids = ((service.network_configuration or {}).get("awsvpcConfiguration") or {}).get("subnets") or []
    subnets = [ec2.get_subnet(i) for i in ids]
    same = [sn for sn in subnets if az and sn.availability_zone == az]
    pool = same or subnets
    used = [getattr(t, "_sbx_subnet", None) for t in live]
    return sorted(pool, key=lambda sn: (used.count(sn.id), sn.id))[0]


def attach_task_eni(ecs: Any, service: Any, task: Any, az: str | None, live: list[Any]) -> None:
    ec2 = _ec2(ecs.account_id, ecs.region_name)
    for att in list(task.attachments):  # moto's: a random address in the first subnet
        for d in att.get("details", []):
            if d["name"] == "networkInterfaceId":
                try:
                    ec2.delete_network_interface(d["value"])
                except Exception:  # noqa: BLE001 - already gone
                    pass
    subnet = _task_subnet(ecs, service, az, live)
    groups = ((service.network_configuration or {}).get("awsvpcConfiguration") or {}).get("securityGroups") or []
    eni = ec2.create_network_interface(subnet=subnet, private_ip_address=_free_ip(ec2, subnet), group_ids=list(groups),
                                       description=f"arn:aws:ecs:{ecs.region_name}:{ecs.account_id}:attachment")
    eni.status = "in-use"
    task._sbx_ip, task._sbx_eni, task._sbx_subnet = eni.private_ip_address, eni.id, subnet.id
    task.availability_zone = subnet.availability_zone
    task.attachments = [{
        "id": str(uuid.uuid4()), "type": "ElasticNetworkInterface", "status": "ATTACHED",
        "details": [{"name": "subnetId", "value": subnet.id}, {"name": "networkInterfaceId", "value": eni.id},
                    {"name": "macAddress", "value": eni.mac_address},
                    {"name": "privateDnsName", "value": eni.private_dns_name},
                    {"name": "privateIPv4Address", "value": eni.private_ip_address}],
    }]


def _free_ip(ec2: Any, subnet: Any) -> str:
    """The lowest address of the subnet no interface holds, after the four AWS reserves (moto: a random one,
    possibly the network address or one already in use)."""
    import ipaddress
    import itertools

    used = {e.private_ip_address for e in ec2.enis.values() if getattr(e.subnet, "id", None) == subnet.id}
    hosts = itertools.islice(ipaddress.ip_network(subnet.cidr_block).hosts(), 3, None)
    return next(str(h) for h in hosts if str(h) not in used)
