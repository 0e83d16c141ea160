"""ECS finders: our task definition family, our service."""

from __future__ import annotations

from botocore.exceptions import ClientError

from vpclink_runbooks.context import Context
from vpclink_runbooks.errors import StepFailed


def current_task_definition(ctx: Context) -> dict | None:
    try:
        current = ctx.aws.ecs.describe_task_definition(taskDefinition=ctx.names.task_family)["taskDefinition"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("ClientException", "InvalidParameterException"):
            raise
        return None
    # A family whose revisions destroy deregistered has nothing a service can run: register anew.
    return current if current.get("status", "ACTIVE") == "ACTIVE" else None


def describe_service(ctx: Context) -> list[dict] | None:
    """The service records ECS has under our service name (any status, with tags); None without the cluster."""
    try:
        return ctx.aws.ecs.describe_services(cluster=ctx.params.cluster, services=[ctx.names.ecs_service],
                                             include=["TAGS"])["services"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ClusterNotFoundException":
            raise
        return None


def find_service(ctx: Context) -> dict | None:
    live = [s for s in describe_service(ctx) or [] if s.get("status") == "ACTIVE"]
    if live and not ctx.names.owns(live[0].get("tags")):
        raise StepFailed(f"an ECS service named {ctx.names.ecs_service} exists in {ctx.params.cluster} but is not "
                         "tagged as this runbook's; rename service.name or remove it")
    return live[0] if live else None
