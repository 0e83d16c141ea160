"""Checks of the ECS service and whether its tasks start."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

from vpclink_runbooks.checks.facts import (
    _primary_tg,
)
from vpclink_runbooks.checks.inventory import Inventory
from vpclink_runbooks.checks.registry import Result, check
from vpclink_runbooks.steps.inspect import placeable_instances, rollout_problem

# -- service --

@check(id="service.running", hop="service", severity="error", repaired_by="ecs",
       remedy="create the service, or set its desired count and let ECS place the tasks")
@check(id="service.placement", hop="service", severity="error", repaired_by=None,
       remedy="keep desired_count within the instances with the port free, free the port, or add an instance")
@check(id="service.deployment", hop="service", severity="warn", repaired_by="ecs",
       remedy="set the deployment percentages params say, so the next deployment can replace tasks")
@check(id="service.load_balancer", hop="service", severity="error", repaired_by="ecs",
       remedy="update the service's load balancer to our target group and container port")
def service_running(inv: Inventory) -> list[Result]:
    """The service runs desired_count tasks behind our target group and can roll a deployment."""
    svc = inv.service
    if svc is None:
        return [Result("service.running", "service", "fail", f"ECS service {inv.names.ecs_service} not found",
                       "create the service (repair does)")]
    p = inv.params
    desired = p.service.desired_count
    out = []
    if svc["runningCount"] < desired or svc["desiredCount"] != desired:
        out.append(Result("service.running", "service", "fail",
                          f"running {svc['runningCount']}/{svc['desiredCount']} (params desired_count {desired})",
                          "set the desired count and let ECS place the tasks (repair does)"))
    else:
        out.append(Result("service.running", "service", "pass", f"running {svc['runningCount']}/{desired}"))

    stuck = _placement_trouble(svc)
    if stuck:
        out.append(Result("service.placement", "service", "fail", f"ECS says: {stuck}",
                          "a fixed host port allows one task per instance: keep desired_count <= instances with "
                          "the port free, free the port on the instance, or add an instance"))
    else:
        out.append(Result("service.placement", "service", "pass", "no placement failures since the last steady "
                          "state"))

    config = svc.get("deploymentConfiguration", {})
    minimum, maximum = config.get("minimumHealthyPercent", 100), config.get("maximumPercent", 200)
    capacity = len(placeable_instances(SimpleNamespace(params=p), inv.world)) if inv.world else desired
    problem = rollout_problem(desired, capacity, minimum, maximum) if p.fixed_host_port else None
    if problem:
        out.append(Result("service.deployment", "service", "fail", f"deployment configuration {minimum}-{maximum}%: "
                          + problem.split(": a new task")[0] + ": the next deployment stalls",
                          f"set minimumHealthyPercent {p.minimum_healthy_percent} and maximumPercent "
                          f"{p.maximum_percent} as params say (repair does)"))
    else:
        out.append(Result("service.deployment", "service", "pass",
                          f"deployment {minimum}-{maximum}% can replace tasks on {capacity} instance(s) with the "
                          "host port free" if p.fixed_host_port else
                          f"deployment {minimum}-{maximum}%: no fixed host port, tasks do not compete for one"))

    tg = _primary_tg(inv)
    lbs = svc.get("loadBalancers", [])
    ours = [lb for lb in lbs if tg and lb.get("targetGroupArn") == tg["TargetGroupArn"]]
    if tg is None:
        pass
    elif not ours or ours[0].get("containerPort") != p.service.container_port:
        shown = [f"{lb.get('targetGroupArn', '').split('/')[-2] if '/' in lb.get('targetGroupArn', '') else '?'}:"
                 f"{lb.get('containerPort')}" for lb in lbs]
        out.append(Result("service.load_balancer", "service", "fail",
                          f"the service registers {shown or 'nothing'}; expected {tg['TargetGroupName']}:"
                          f"{p.service.container_port}",
                          "update the service's load balancer to our target group and container port (repair does)"))
    else:
        out.append(Result("service.load_balancer", "service", "pass",
                          f"registers {p.service.name}:{p.service.container_port} in {tg['TargetGroupName']}"))
    return out


UNASSUMABLE_ROLE = "ECS was unable to assume the role"


@check(id="task_definition.starts", hop="task_definition", severity="error", repaired_by=None,
       remedy="fix what ECS says (execution role, secret or image) and apply again")
def tasks_start(inv: Inventory) -> list[Result]:
    """The service's tasks start: ECS can assume the execution role, resolve the secrets and pull the image."""
    svc, td = inv.service, inv.task_definition or {}
    if svc is None:
        return [Result("task_definition.starts", "task_definition", "skip", "no ECS service: no task to start")]
    name = (svc.get("taskDefinition") or "").split("/")[-1]
    role = _since_steady(svc, lambda m: UNASSUMABLE_ROLE in m)
    if role:
        return [Result("task_definition.starts", "task_definition", "fail",
                       f"no task of {name} starts: the execution role {td.get('executionRoleArn')}: ECS says: {role}",
                       "create that role trusting ecs-tasks.amazonaws.com (with AmazonECSTaskExecutionRolePolicy) "
                       "or fix it in IAM; the runbook does not create IAM roles")]
    failed = sorted((t for t in inv.stopped_tasks if t["task_definition"] == name
                     and t.get("stop_code") == "TaskFailedToStart"), key=lambda t: str(t.get("created_at")))
    started = [str(t.get("created_at")) for t in inv.tasks if t["task_definition"] == name
               and t["last_status"] == "RUNNING"]
    if not failed or (started and max(started) > str(failed[-1].get("created_at"))):
        return [Result("task_definition.starts", "task_definition", "pass", f"no task of {name} failed to start")]
    reason = failed[-1].get("stopped_reason") or ""
    containers = td.get("containerDefinitions", [])
    secrets = [s["valueFrom"] for c in containers for s in c.get("secrets") or [] if s["valueFrom"] in reason]
    images = [c["image"] for c in containers if c.get("image") and c["image"] in reason]
    what, remedy = "", "fix what ECS says and apply again"
    if secrets:
        what = f"secret {', '.join(secrets)} cannot be resolved: "
        remedy = ("create the secret (SSM parameter or Secrets Manager secret) in this account and region, or fix "
                  "service.secrets and apply; the runbook does not create secrets")
    elif images:
        what = f"image {images[0]} cannot be pulled: "
        remedy = "push that image (repository and tag) to ECR, or fix service.image and apply"
    return [Result("task_definition.starts", "task_definition", "fail",
                   f"{what}{len(failed)} task(s) of {name} stopped before starting; ECS says: {reason}", remedy)]


def _since_steady(service: dict, match: Callable[[str], bool]) -> str | None:
    """The newest service event `match` accepts, if it came after the service's last steady state."""
    for event in service.get("events", []):  # newest first
        message = event.get("message", "")
        if "has reached a steady state" in message:
            return None
        if match(message):
            return message
    return None


def _placement_trouble(service: dict) -> str | None:
    """The newest 'unable to place' event, if it came after the service's last steady state."""
    for event in service.get("events", []):  # newest first
        message = event.get("message", "")
        if "has reached a steady state" in message:
            return None
        if "unable to place a task" in message or "already using a port required" in message:
            return message
    return None

