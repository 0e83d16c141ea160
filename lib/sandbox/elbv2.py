"""ELBv2 behaviour that moto 5.2 lacks.

ELBv2
- NLB ARNs are `loadbalancer/net/...` (moto: `app`), so listener ARNs are `listener/net/...`.
- Load balancers stay `provisioning` for `delays.nlb_provisioning` s (moto: active on first read).
- NLBs get one network interface per subnet ("ELB net/NAME/ID"), removed on delete (moto: none).
- set_subnets accepts a single subnet for an NLB (moto: 2+ AZs, the ALB rule).
- Deleting a load balancer a VPC link targets fails with ResourceInUse (moto: deletes it).
- Deleting a load balancer detaches it from its target groups (moto: dangling references); so does
  deleting or modifying the last listener that forwards to one.
- An instance launched in a VPC subnet without security groups gets the VPC's default group (moto: none).
- Every network interface has a private DNS name (moto: only with DNS hostnames on, and its ECS then cannot
  start awsvpc tasks in any other VPC).
- Target groups key targets by (Id, Port) as AWS does (moto: by Id only, so one port per instance).
- Target health is real: `initial` for `delays.target_healthy` s (and while the NLB provisions),
  then `healthy`; `unhealthy` (Target.FailedHealthChecks) when the instance is not running or,
  for an ECS container instance, no running task listens on that host port; `unused`
  (Target.NotInUse) without a load balancer or when the instance's AZ is not enabled on it;
  deregistered targets show `draining` for `delays.target_healthy` s (moto: always healthy).
"""

from __future__ import annotations

from typing import Any

from . import ecs_scheduler
from .base import _CFG, LOCK, _apigw, _ecs, _elbv2, _now, _wrap


def _lb_active(lb: Any) -> bool:
    lb.activate()
    return lb.state == "active"


def _install_elbv2() -> None:
    from moto.elbv2 import models as m
    from moto.elbv2.exceptions import ELBClientError
    from moto.elbv2.responses import ELBV2Response

    def set_subnets(orig: Any) -> Any:
        def f(self: Any, arn: str, subnets: list[str], subnet_mappings: list[dict[str, Any]]) -> Any:
            lb = self.load_balancers.get(arn)
            ids = [*subnets, *(m_["SubnetId"] for m_ in subnet_mappings)]
            if lb is not None and lb.type == "network" and len(ids) == 1:
                lb.subnets = [self.ec2_backend.get_subnet(ids[0])]
                return lb.availability_zones
            return orig(self, arn, subnets, subnet_mappings)
        return f

    def create_load_balancer(orig: Any) -> Any:
        def f(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
            with LOCK:
                lb = orig(self, name, *args, **kwargs)
                lb._sbx_created = _now()
                if lb.type == "network" and ":loadbalancer/app/" in lb.arn:
                    old = lb.arn
                    new = old.replace(":loadbalancer/app/", ":loadbalancer/net/")
                    self.load_balancers.pop(old, None)
                    lb.arn = new
                    self.load_balancers[new] = lb
                    tags = self.tagging_service.list_tags_for_resource(old).get("Tags", [])
                    self.tagging_service.delete_all_tags_for_resource(old)
                    if tags:
                        self.tagging_service.tag_resource(new, tags)
                if lb.type == "network":
                    ec2 = self.ec2_backend
                    lb._sbx_enis = []
                    lb_id = lb.arn.split("/")[-1]
                    for subnet in lb.subnets:
                        eni = ec2.create_network_interface(
                            subnet=subnet,
                            private_ip_address=None,
                            group_ids=list(lb.security_groups or []),
                            description=f"ELB net/{lb.name}/{lb_id}",
                        )
                        eni.status = "in-use"
                        eni.interface_type = "network_load_balancer"
                        lb._sbx_enis.append(eni.id)
                return lb

        return f

    def activate(orig: Any) -> Any:
        def f(self: Any) -> None:
            created = getattr(self, "_sbx_created", None)
            if self.state == "provisioning" and (
                created is None or _now() - created >= _CFG.nlb_provisioning
            ):
                self.state = "active"

        return f

    def delete_load_balancer(orig: Any) -> Any:
        def f(self: Any, arn: str) -> None:
            with LOCK:
                for link in _apigw(self.account_id, self.region_name).vpc_links.values():
                    if arn in (link.target_arns or []):
                        raise ELBClientError(
                            "ResourceInUse",
                            f"Load balancer '{arn}' cannot be deleted because it is currently associated "
                            f"with another service (VPC link '{link.id}')",
                        )
                lb = self.load_balancers.get(arn)
                orig(self, arn)
                if lb is None:
                    return
                for tg in self.target_groups.values():
                    while arn in tg.load_balancer_arns:
                        tg.load_balancer_arns.remove(arn)
                ec2 = self.ec2_backend
                for eni_id in getattr(lb, "_sbx_enis", []):
                    try:
                        ec2.delete_network_interface(eni_id)
                    except Exception:  # noqa: BLE001 - already gone
                        pass

        return f

    def tg_register(orig: Any) -> Any:
        def f(self: Any, targets: list[dict[str, Any]]) -> None:
            with LOCK:
                for target in targets:
                    inst = self.ec2_backend.get_instance_by_id(target["Id"])
                    if inst is not None and inst.state != "running":
                        raise m.TargetNotRunning(instance_id=target["Id"])
                    _tg_add(self, target["Id"], int(target.get("Port") or self.port), _now())

        return f

    def tg_deregister(orig: Any) -> Any:
        def f(self: Any, targets: list[dict[str, Any]]) -> None:
            with LOCK:
                for target in targets:
                    if target.get("Port"):
                        keys = [_tkey(target["Id"], target["Port"])]
                    else:
                        keys = [k for k, v in self.targets.items() if v["Id"] == target["Id"]]
                    for k in keys:
                        _tg_remove(self, k)

        return f

    def tg_deregister_terminated(orig: Any) -> Any:
        def f(self: Any, instance_ids: list[str]) -> None:
            for k, v in list(self.targets.items()):
                if v["Id"] in instance_ids:
                    _tg_remove(self, k)

        return f

    def tg_health_for(orig: Any) -> Any:
        def f(self: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
            return _health(self, target, ec2_backend)

        return f

    def describe_target_health(orig: Any) -> Any:
        def f(self: Any, target_group_arn: str, targets: list[dict[str, Any]]) -> Any:
            with LOCK:
                tg = self.target_groups.get(target_group_arn)
                if tg is None:
                    raise m.TargetGroupNotFoundError()
                ecs_scheduler._reconcile(_ecs(self.account_id, self.region_name))
                if targets:
                    out = []
                    for t in targets:
                        if t.get("Port"):
                            out.append(_health(tg, t, self.ec2_backend))
                        else:
                            regs = [v for v in tg.targets.values() if v["Id"] == t["Id"]]
                            out.extend(_health(tg, r, self.ec2_backend) for r in regs)
                            if not regs:
                                out.append(_health(tg, t, self.ec2_backend))
                    return out
                listed = list(tg.targets.values())
                now = _now()
                listed += [t for t, until in _draining(tg).values() if until > now]
                return [_health(tg, t, self.ec2_backend) for t in listed]

        return f

    def call_action(orig: Any) -> Any:
        def f(self: Any) -> Any:
            with LOCK:
                try:
                    ecs_scheduler._reconcile(_ecs(self.current_account, self.region))
                except Exception:  # noqa: BLE001 - never break the ELB API on scheduler trouble
                    pass
                return orig(self)

        return f

    def resync_after(orig: Any) -> Any:
        # moto never detaches a target group from its NLB when the last listener forwarding to it is
        # deleted or modified; AWS does, and the runbook relies on it to delete stale target groups.
        def f(self: Any, *args: Any, **kwargs: Any) -> Any:
            with LOCK:
                result = orig(self, *args, **kwargs)
                _resync_target_group_load_balancers(self)
                return result

        return f

    _wrap(m.ELBv2Backend, "delete_listener", "elbv2.delete_listener", resync_after)
    _wrap(m.ELBv2Backend, "modify_listener", "elbv2.modify_listener", resync_after)
    _wrap(m.ELBv2Backend, "create_load_balancer", "elbv2.create_load_balancer", create_load_balancer)
    _wrap(m.ELBv2Backend, "delete_load_balancer", "elbv2.delete_load_balancer", delete_load_balancer)
    _wrap(m.ELBv2Backend, "set_subnets", "elbv2.set_subnets", set_subnets)
    _wrap(m.ELBv2Backend, "describe_target_health", "elbv2.describe_target_health", describe_target_health)
    _wrap(m.FakeLoadBalancer, "activate", "elbv2.activate", activate)
    _wrap(m.FakeTargetGroup, "register", "elbv2.tg.register", tg_register)
    _wrap(m.FakeTargetGroup, "deregister", "elbv2.tg.deregister", tg_deregister)
    _wrap(
        m.FakeTargetGroup,
        "deregister_terminated_instances",
        "elbv2.tg.deregister_terminated",
        tg_deregister_terminated,
    )
    _wrap(m.FakeTargetGroup, "health_for", "elbv2.tg.health_for", tg_health_for)
    _wrap(ELBV2Response, "call_action", "elbv2.call_action", call_action)


def _resync_target_group_load_balancers(backend: Any) -> None:
    """Recompute each target group's LoadBalancerArns from the listeners that forward to it."""
    refs: dict[str, list[str]] = {}
    for lb in backend.load_balancers.values():
        for listener in lb.listeners.values():
            actions = list(listener.default_actions)
            for rule in getattr(listener, "_rules", {}).values():
                actions += list(getattr(rule, "actions", []))
            for action in actions:
                data = getattr(action, "data", {}) or {}
                arns = [data.get("TargetGroupArn")] + [
                    g.get("TargetGroupArn") for g in data.get("ForwardConfig", {}).get("TargetGroups", [])]
                for arn in filter(None, arns):
                    if lb.arn not in refs.setdefault(arn, []):
                        refs[arn].append(lb.arn)
    for tg in backend.target_groups.values():
        tg.load_balancer_arns = refs.get(tg.arn, [])


def _tkey(target_id: str, port: Any) -> str:
    return f"{target_id}:{int(port)}"


def _draining(tg: Any) -> dict[str, Any]:
    if not hasattr(tg, "_sbx_draining"):
        tg._sbx_draining = {}
    return tg._sbx_draining


def _tg_add(tg: Any, target_id: str, port: int, registered_at: float) -> None:
    key = _tkey(target_id, port)
    existing = tg.targets.get(key)
    tg.targets[key] = {
        "Id": target_id,
        "Port": int(port),
        "_registered": existing["_registered"] if existing else registered_at,
    }
    _draining(tg).pop(key, None)


def _tg_remove(tg: Any, key: str) -> bool:
    t = tg.targets.pop(key, None)
    if t is None:
        return False
    _draining(tg)[key] = ({"Id": t["Id"], "Port": t["Port"], "_draining": True}, _now() + _CFG.target_healthy)
    return True


def _health(tg: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
    from moto.elbv2.models import FakeHealthStatus

    tid = target["Id"]
    port = int(target.get("Port") or tg.port or 0)
    hc_port = tg.health_check_port

    def status(state: str, reason: str | None = None, desc: str | None = None) -> Any:
        return FakeHealthStatus(tid, port, hc_port, state, reason, desc)

    key = _tkey(tid, port)
    t = tg.targets.get(key)
    if t is None:
        drain = _draining(tg).get(key)
        if drain and drain[1] > _now():
            return status("draining", "Target.DeregistrationInProgress", "Target deregistration is in progress")
        return status("unused", "Target.NotRegistered", "Target is not registered to the target group")
    inst = ec2_backend.get_instance_by_id(tid) if tid.startswith("i-") else None
    if inst is not None and inst.state != "running":
        return status("unhealthy", "Target.FailedHealthChecks", "Health checks failed")
    elb = _elbv2(tg.account_id, tg.region_name)
    lbs = [elb.load_balancers[a] for a in tg.load_balancer_arns if a in elb.load_balancers]
    if not lbs:
        return status(
            "unused", "Target.NotInUse", "Target group is not configured to receive traffic from the load balancer"
        )
    if inst is not None:
        azs = {s.availability_zone for lb in lbs for s in lb.subnets}
        if inst.availability_zone not in azs:
            return status(
                "unused",
                "Target.NotInUse",
                "Target is in an Availability Zone that is not enabled for the load balancer",
            )
    if not all(_lb_active(lb) for lb in lbs) or _now() - t["_registered"] < _CFG.target_healthy:
        return status("initial", "Elb.RegistrationInProgress", "Target registration is in progress")
    if inst is not None and not _listening(tg.account_id, tg.region_name, tid, port):
        return status("unhealthy", "Target.FailedHealthChecks", "Health checks failed")
    if tg.target_type == "ip" and not _ip_listening(tg.account_id, tg.region_name, tid):
        return status("unhealthy", "Target.FailedHealthChecks", "Health checks failed")
    return status("healthy")


def _ip_listening(account_id: str, region: str, ip: str) -> bool:
    """An IP target answers while a running awsvpc task has that address."""
    ecs = _ecs(account_id, region)
    return any(getattr(t, "_sbx_ip", None) == ip and t.desired_status == "RUNNING" and t.last_status == "RUNNING"
               for tasks in ecs.tasks.values() for t in tasks.values())


def _listening(account_id: str, region: str, instance_id: str, port: int) -> bool:
    """False only when the instance is an ECS container instance and no running task binds `port`."""
    ecs = _ecs(account_id, region)
    for cluster, cis in ecs.container_instances.items():
        for ci in cis.values():
            if ci.ec2_instance_id != instance_id:
                continue
            for task in ecs.tasks.get(cluster, {}).values():
                if (
                    task.container_instance_arn == ci.container_instance_arn
                    and task.desired_status == "RUNNING"
                    and task.last_status == "RUNNING"
                    and port in ecs_scheduler._task_host_ports(ecs, task)
                ):
                    return True
            return False
    return True
