"""ECS behaviour that moto 5.2 lacks: the service API; the scheduler is in ecs_scheduler.

ECS
- A service scheduler (moto never starts service tasks): tasks are placed on ACTIVE, connected
  container instances honouring fixed host ports (reserved agent ports, ports of other tasks),
  CPU/memory and the distinctInstance constraint, spread across AZs then instances; dynamic
  host ports (hostPort 0/absent, bridge) come from 32768-60999. Unplaceable tasks produce the ECS
  event "... is already using a port required by your task." once per distinct situation.
- Tasks go PENDING -> RUNNING after `delays.task_start` s, then are registered in the service's
  target groups (instance id + the host port mapped to the load balancer's containerPort);
  stopped tasks are deregistered.
- Rolling deployments honour maximumPercent / minimumHealthyPercent (defaults 200/100), scale
  up and down, stop everything on delete_service; deployments[] and running/pending counts are
  real, so the `services_stable` waiter works; "has reached a steady state." events.
- create_service refuses a target group with no load balancer (as AWS does), and the name of a DRAINING service
  ("Unable to Start a service that is still Draining.").
- delete_service leaves the service DRAINING until its tasks have stopped, then INACTIVE (moto: INACTIVE at
  once); list_services omits DRAINING and INACTIVE services (moto lists them).
- Tasks that cannot start (missing secrets or ECR image, an execution role ECS cannot assume): see ecs_tasks.
- update_service stores the resolved task definition ARN (moto stores the string as given).
- list_tasks filters by serviceName and defaults desiredStatus to RUNNING (as AWS does).
- Tasks started with run_task/start_task keep RUNNING (moto walks them to STOPPED as they are
  described); container instances show real running/pending counts, remaining PORTS/CPU/MEMORY,
  and agentConnected false while their EC2 instance is not running (their targets go unhealthy).
ECS (awsvpc)
- awsvpc tasks (EC2 or FARGATE) get a network interface with an address from the subnet of their AZ (moto: a
  random address in the first subnet), deleted when the task stops; running tasks are registered as IP
  targets (private IP + containerPort); an IP target is healthy only while a running task has that IP.
  Fargate tasks are placed on no instance, spread over the service's subnets.
"""

from __future__ import annotations

from typing import Any

from .base import _CFG, _ORIG, _TL, LOCK, _elbv2, _now, _utcnow, _wrap
from .ecs_scheduler import reconcile, stop_task

# --------------------------------------------------------------------------------------------
# ECS scheduler
# --------------------------------------------------------------------------------------------


def _task_classes() -> tuple[Any, Any]:
    """SteadyTask (a task whose lifecycle is time based) and SchedContainer, subclasses of moto's."""
    from moto.ecs import models as m

    class SteadyTask(m.Task):
        """A task whose lifecycle is time based: PENDING -> RUNNING -> (stopped) STOPPED."""

        @property
        def status(self) -> str:  # type: ignore[override]
            if self.desired_status == "STOPPED" or getattr(self, "_sbx_stopped_at", None) is not None:
                return "STOPPED"
            created = getattr(self, "_sbx_created", None)
            if created is None or _now() - created >= _CFG.task_start:
                return "RUNNING"
            return "PENDING"

        @status.setter
        def status(self, value: str) -> None:
            if value == "STOPPED":
                self.desired_status = "STOPPED"

    class SchedContainer(m.Container):
        def __init__(self, task: Any, task_def: Any, cdef: dict[str, Any], bindings: list[dict[str, Any]]):
            super().__init__(task_def)
            self._task = task
            self.name = cdef.get("name")
            self.image = cdef.get("image")
            self.cpu = cdef.get("cpu", 0)
            self.memory = cdef.get("memory")
            self.health_status = "UNKNOWN"
            self.network_bindings = [
                {k: v for k, v in b.items() if k != "containerName"}
                for b in bindings
                if b["containerName"] == self.name
            ]

        @property
        def last_status(self) -> str:  # type: ignore[override]
            return self._task.last_status

        @last_status.setter
        def last_status(self, value: str) -> None:
            pass

    return SteadyTask, SchedContainer


def _adopt(tasks: Any) -> Any:
    from moto.ecs import models as m

    SteadyTask = _ORIG["SteadyTask"]
    for t in tasks or []:
        if type(t) is m.Task:
            t.__class__ = SteadyTask
            t._sbx_created = _now()
            t.created_at = t.started_at = _utcnow()
    return tasks


def _run_task(orig: Any) -> Any:
    def f(self: Any, *args: Any, **kwargs: Any) -> Any:
        with LOCK:
            return _adopt(orig(self, *args, **kwargs))

    return f


def _create_service(orig: Any) -> Any:
    from moto.ecs.exceptions import InvalidParameterException

    def f(self: Any, cluster_str: str, service_name: str, *args: Any, **kwargs: Any) -> Any:
        with LOCK:
            lbs = kwargs.get("load_balancers") or (args[2] if len(args) > 2 else None) or []
            elb = _elbv2(self.account_id, self.region_name)
            for lb in lbs:
                arn = lb.get("targetGroupArn")
                tg = elb.target_groups.get(arn) if arn else None
                if arn and tg is None:
                    raise InvalidParameterException(f"Target group {arn} not found.")
                if tg is not None and not tg.load_balancer_arns:
                    raise InvalidParameterException(
                        f"The target group with targetGroupArn {arn} does not have an associated load balancer."
                    )
            reconcile(self)
            existing = self.services.get(f"{self._get_cluster(cluster_str).name}:{service_name}")
            if existing is not None and existing.status == "DRAINING":
                # AWS refuses the name until the old service is INACTIVE
                raise InvalidParameterException("Unable to Start a service that is still Draining.")
            service = orig(self, cluster_str, service_name, *args, **kwargs)
            extra = getattr(_TL, "create_params", None) or {}
            _TL.create_params = None
            service.deployment_configuration = extra.get("deploymentConfiguration") or {
                "maximumPercent": 200,
                "minimumHealthyPercent": 100,
                "deploymentCircuitBreaker": {"enable": False, "rollback": False},
            }
            service.placement_constraints = extra.get("placementConstraints") or []
            service.placement_strategy = extra.get("placementStrategy") or []
            if extra.get("healthCheckGracePeriodSeconds") is not None:
                service.health_check_grace_period_seconds = extra["healthCheckGracePeriodSeconds"]
            service.created_at = _utcnow()
            reconcile(self)
            return service

    return f


def _resp_create_service(orig: Any) -> Any:
    def f(self: Any) -> Any:
        _TL.create_params = {
            k: self._get_param(k)
            for k in (
                "deploymentConfiguration",
                "placementConstraints",
                "placementStrategy",
                "healthCheckGracePeriodSeconds",
            )
        }
        try:
            return orig(self)
        finally:
            _TL.create_params = None

    return f


def _update_service(orig: Any) -> Any:
    def f(self: Any, props: dict[str, Any]) -> Any:
        with LOCK:
            reconcile(self)
            service = orig(self, props)
            if service.task_definition and not service.task_definition.startswith("arn:"):
                service.task_definition = self.describe_task_definition(service.task_definition).arn
            reconcile(self)
            return service

    return f


def _delete_service(orig: Any) -> Any:
    def f(self: Any, cluster_name: str, service_name: str, force: bool) -> Any:
        with LOCK:
            reconcile(self)
            service = orig(self, cluster_name, service_name, force)
            service.desired_count = 0
            service.status = "DRAINING"  # moto: INACTIVE at once; ECS drains the tasks first
            reconcile(self)
            return service

    return f


def _user_stop_task(orig: Any) -> Any:
    SteadyTask = _ORIG["SteadyTask"]

    def f(self: Any, cluster_str: str, task_str: str, reason: str) -> Any:
        with LOCK:
            cluster = self._get_cluster(cluster_str)
            for arn, task in self.tasks.get(cluster.name, {}).items():
                if arn.endswith(task_str.split("/")[-1]) and isinstance(task, SteadyTask):
                    stop_task(self, task, reason or "Task stopped by user", "UserInitiated")
                    reconcile(self)
                    return task
            return orig(self, cluster_str, task_str, reason)

    return f


def _list_tasks(orig: Any) -> Any:
    def f(self: Any, cluster_str: Any = None, container_instance: Any = None, family: Any = None,
          started_by: Any = None, service_name: Any = None, desiredStatus: Any = None) -> Any:  # noqa: N803
        with LOCK:
            tasks = orig(self, cluster_str, container_instance, family, started_by, None,
                         desiredStatus or "RUNNING")
            if service_name:
                name = service_name.split("/")[-1]
                tasks = [t for t in tasks if t.group == f"service:{name}"]
            return tasks

    return f


def _list_services(orig: Any) -> Any:
    def f(self: Any, cluster_str: str, *args: Any, **kwargs: Any) -> Any:
        with LOCK:
            reconcile(self)
            arns = set(orig(self, cluster_str, *args, **kwargs))
            return sorted(s.arn for s in self.services.values() if s.arn in arns and s.status == "ACTIVE")

    return f


def _call_action(orig: Any) -> Any:
    def f(self: Any) -> Any:
        with LOCK:
            reconcile(self.ecs_backend)
            return orig(self)

    return f


def _install_ecs() -> None:
    from moto.ecs import models as m
    from moto.ecs.responses import EC2ContainerServiceResponse

    _ORIG["SteadyTask"], _ORIG["SchedContainer"] = _task_classes()

    B = m.EC2ContainerServiceBackend
    _wrap(B, "run_task", "ecs.run_task", _run_task)
    _wrap(B, "start_task", "ecs.start_task", _run_task)
    _wrap(B, "create_service", "ecs.create_service", _create_service)
    _wrap(B, "update_service", "ecs.update_service", _update_service)
    _wrap(B, "delete_service", "ecs.delete_service", _delete_service)
    _wrap(B, "stop_task", "ecs.stop_task", _user_stop_task)
    _wrap(B, "list_tasks", "ecs.list_tasks", _list_tasks)
    _wrap(B, "list_services", "ecs.list_services", _list_services)
    _wrap(EC2ContainerServiceResponse, "create_service", "ecs.resp_create_service", _resp_create_service)
    _wrap(EC2ContainerServiceResponse, "call_action", "ecs.call_action", _call_action)
