"""Why an ECS task would not start on AWS: missing secrets, a missing ECR image, an execution role ECS cannot assume.

ECS (task start, moto starts every task)
- A task whose secrets (containerDefinitions[].secrets valueFrom: an SSM parameter name or ARN, a Secrets Manager
  ARN) do not exist, or whose image is an ECR image of this account and region whose repository or tag/digest is
  missing, goes PENDING -> STOPPED with stopCode TaskFailedToStart and the stoppedReason the ECS agent (EC2) or
  Fargate gives; its containers carry the reason too. Secrets are resolved before the image is pulled.
- An execution role ECS cannot assume (no such role in IAM, or its trust policy does not trust
  ecs-tasks.amazonaws.com) when the task needs it (secrets; an ECR image on Fargate): no task starts, and the
  service's events say "ECS was unable to assume the role ...".
Images outside this account's ECR (public registries) always pull.
"""

from __future__ import annotations

import json
import re
from typing import Any

STOP_CODE = "TaskFailedToStart"
_ECR = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/([^:@]+)(?::([^@]+))?(?:@(sha256:[0-9a-f]+))?$")
_TRUSTED = "ecs-tasks.amazonaws.com"


def ecr_image(image: str | None) -> tuple[str, str, str, str | None, str | None] | None:
    """(account, region, repository, tag, digest) of an ECR image URI; None for any other registry."""
    m = _ECR.match(image or "")
    if not m:
        return None
    account, region, repo, tag, digest = m.groups()
    return account, region, repo, tag or (None if digest else "latest"), digest


def _ssm_missing(account: str, region: str, value_from: str) -> bool:
    from moto.ssm.models import ssm_backends

    parts = value_from.split(":")
    if value_from.startswith("arn:") and len(parts) >= 6:
        account, region = parts[4] or account, parts[3] or region
    return ssm_backends[account][region].get_parameter(value_from) is None


def _secret_missing(account: str, region: str, value_from: str) -> bool:
    from moto.secretsmanager.models import secretsmanager_backends

    parts = value_from.split(":")
    # arn:aws:secretsmanager:region:account:secret:name-AbCdEf[:json-key:version-stage:version-id]
    arn = ":".join(parts[:7])
    return secretsmanager_backends[parts[4] or account][parts[3] or region].secrets.get(arn) is None


def _secrets_failure(account: str, region: str, td: Any, fargate: bool) -> str | None:
    ssm_missing, asm_missing = [], []
    for cdef in td.container_definitions:
        for secret in cdef.get("secrets") or []:
            value_from = secret.get("valueFrom") or ""
            if value_from.startswith("arn:") and ":secretsmanager:" in value_from:
                if _secret_missing(account, region, value_from):
                    asm_missing.append(value_from)
            elif _ssm_missing(account, region, value_from):
                ssm_missing.append(value_from)
    # The agent (EC2) and Fargate word the same failure differently (ECS stopped-task errors, ECS agent
    # ssmsecret/asmsecret resources): an SSM name that does not exist is an "invalid parameter".
    if ssm_missing:
        if fargate:
            return ("ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
                    "retrieval failed: unable to retrieve secrets from ssm: service call has been retried 1 time(s): "
                    f"invalid ssm parameters: {', '.join(ssm_missing)}")
        missing = ", ".join(ssm_missing)
        return f"Fetching secret data from SSM Parameter Store in {region}: invalid parameters: {missing}"
    if asm_missing:
        arn = asm_missing[0]
        if fargate:
            return ("ResourceInitializationError: unable to pull secrets or registry auth: execution resource "
                    "retrieval failed: unable to retrieve secret from asm: service call has been retried 1 time(s): "
                    f"failed to fetch secret {arn} from secrets manager: ResourceNotFoundException: Secrets Manager "
                    "can't find the specified secret.")
        return (f"Fetching secret data from AWS Secrets Manager in region {region}: secret {arn}: "
                "ResourceNotFoundException: Secrets Manager can't find the specified secret.")
    return None


def _image_failure(account: str, region: str, image: str, fargate: bool) -> str | None:
    ref = ecr_image(image)
    if ref is None or (ref[0], ref[1]) != (account, region):
        return None  # another registry, account or region: the sandbox does not hold it, so it pulls
    from moto.ecr.models import ecr_backends

    _, _, repo, tag, digest = ref
    repository = ecr_backends[account][region].repositories.get(repo)
    found = repository is not None and any(
        (not tag or tag in i.image_tags) and (not digest or digest == i.get_image_digest()) for i in repository.images)
    if found:
        return None
    if fargate:  # containerd's wording
        return (f"CannotPullContainerError: pull image manifest has been retried 1 time(s): failed to resolve ref "
                f"{image}: {image}: not found")
    if repository is None:  # Docker's wording, with ECR's error
        registry = image.split("/")[0]
        return (f"CannotPullContainerError: Error response from daemon: repository {registry}/{repo} not found: "
                f"name unknown: The repository with name '{repo}' does not exist in the registry with id '{account}'")
    return (f"CannotPullContainerError: Error response from daemon: manifest for {image} not found: "
            "manifest unknown: Requested image not found")


def start_failure(account: str, region: str, td: Any, fargate: bool) -> tuple[str, dict[str, str]] | None:
    """(the task's stoppedReason, {container name: reason}) when the task cannot start, else None."""
    reason = _secrets_failure(account, region, td, fargate)
    if reason:
        return reason, {c.get("name"): reason for c in td.container_definitions if c.get("secrets")}
    for cdef in td.container_definitions:
        reason = _image_failure(account, region, cdef.get("image") or "", fargate)
        if reason:
            return reason, {cdef.get("name"): reason}
    return None


def _needs_execution_role(account: str, region: str, td: Any, fargate: bool) -> bool:
    for cdef in td.container_definitions:
        if cdef.get("secrets"):
            return True
        ref = ecr_image(cdef.get("image"))
        if fargate and ref is not None and ref[0] == account:
            return True  # Fargate pulls private ECR images with the execution role (EC2: the instance role)
    return False


def _trusts_ecs_tasks(document: Any) -> bool:
    if isinstance(document, str):
        try:
            from urllib.parse import unquote

            document = json.loads(unquote(document) if document.startswith("%") else document)
        except ValueError:
            return False
    statements = (document or {}).get("Statement") or []
    for st in statements if isinstance(statements, list) else [statements]:
        actions = st.get("Action") or []
        actions = [actions] if isinstance(actions, str) else actions
        services = (st.get("Principal") or {}).get("Service") if isinstance(st.get("Principal"), dict) else None
        services = [services] if isinstance(services, str) else services or []
        if (st.get("Effect") == "Allow" and any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions)
                and _TRUSTED in services):
            return True
    return False


def role_failure(account: str, td: Any, region: str, fargate: bool) -> str | None:
    """The error ECS reports when it cannot assume the task's execution role, if the task needs that role."""
    arn = getattr(td, "execution_role_arn", None)
    if not arn or not _needs_execution_role(account, region, td, fargate):
        return None
    from moto.iam.models import iam_backends

    iam = iam_backends[arn.split(":")[4] or account]["aws"]
    name = arn.split("/")[-1]
    role = next((r for r in iam.roles.values() if r.arn == arn or r.name == name), None)
    if role is not None and _trusts_ecs_tasks(role.assume_role_policy_document):
        return None
    return (f"ECS was unable to assume the role '{arn}' that was provided for this task. Please verify that the role "
            "being passed has the proper trust relationship and permissions and that your IAM user has permissions "
            "to pass this role.")


# ---- the scheduler's side: mark a task that will fail, stop it when due, throttle the retries -----------------

UNSTABLE = "(service {name}) is unable to consistently start tasks successfully."


def mark(ecs: Any, task: Any, td: Any, fargate: bool) -> None:
    """Decide at start whether this task will fail to start (the world is read as ECS would read it then)."""
    task._sbx_fail = start_failure(ecs.account_id, ecs.region_name, td, fargate)


def fail_due(ecs: Any, service: Any, sb: dict[str, Any], live: list[Any], start_delay: float) -> None:
    """Stop the tasks whose container instance is gone, and those whose start has failed by now (PENDING ->
    STOPPED, never RUNNING), noting the failures for the service throttle logic: after repeated failures ECS waits
    longer and longer between attempts."""
    from .base import _now
    from .ecs_scheduler import event, stop_task

    now = _now()
    registered = {ci.container_instance_arn for ci in ecs.container_instances.get(service.cluster_name, {}).values()}
    for t in live:
        if t.container_instance_arn and t.container_instance_arn not in registered:
            # its container instance was deregistered: ECS no longer tracks the task (an orphan) and the service
            # scheduler starts a replacement on the instances it has
            stop_task(ecs, t, "Task stopped because its container instance was deregistered.")
            continue
        fail = getattr(t, "_sbx_fail", None)
        if fail is None:
            if t.last_status == "RUNNING" and t.task_definition_arn == service.task_definition:
                sb["fail_streak"] = 0  # the current definition's tasks do start
            continue
        if now - t._sbx_created < start_delay:
            continue
        reason, containers = fail
        stop_task(ecs, t, reason, STOP_CODE)
        for c in t.containers:
            if c.name in containers:
                c.reason = containers[c.name]
            c.__dict__.pop("exitCode", None)  # the container never ran: ECS shows no exit code
        streak = sb["fail_streak"] = sb.get("fail_streak", 0) + 1
        # ECS doubles the wait up to a cap (15 to 27 minutes in the docs); here scaled to the task start delay.
        sb["next_start"] = now + min(start_delay * 2 ** streak, start_delay * 60)
        if streak == 3:
            event(service, UNSTABLE.format(name=service.name))


def blocked(ecs: Any, service: Any, sb: dict[str, Any], td: Any, now: float) -> str | None:
    """Why the scheduler starts no task now: "" while throttled, the service event when the execution role cannot
    be assumed, else None."""
    fargate = (service.launch_type or "EC2") == "FARGATE"
    role = role_failure(ecs.account_id, td, ecs.region_name, fargate)
    if role:
        return f"(service {service.name}) failed to launch a task with (error {role})."
    if now < sb.get("next_start", 0):
        return ""
    return None


def finish_draining(service: Any, sb: dict[str, Any], live: list[Any], now: float, delay: float) -> None:
    """A deleted service stays DRAINING until its tasks have stopped (and been deregistered), then INACTIVE."""
    if service.status == "DRAINING" and not live and all(now - t._sbx_stopped_at >= delay for t in sb["tasks"]):
        service.status = "INACTIVE"
