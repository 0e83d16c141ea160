"""ECS finders: our task definition family's revisions, our service.

A service of our name in the cluster that is not tagged as ours raises errors.NotOurs; the list of task
definitions returns only the revisions tagged as ours."""

from __future__ import annotations

from vpclink_runbooks.aws.missing import ignore_missing
from vpclink_runbooks.errors import NotOurs
from vpclink_runbooks.names import Names

PERMISSIONS = ["ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions", "ecs:DescribeServices"]
# What DescribeTaskDefinition answers for a family with no revision.
NO_TASK_DEFINITION = ("ClientException", "InvalidParameterException")


def task_definition(aws, names: Names) -> dict | None:
    """The latest ACTIVE revision of our family; None when it has none a service can run."""
    current = ignore_missing(lambda: aws.ecs.describe_task_definition(taskDefinition=names.task_family),
                             *NO_TASK_DEFINITION)
    current = (current or {}).get("taskDefinition")
    # A family whose revisions destroy deregistered has nothing a service can run: register anew.
    return current if current and current.get("status", "ACTIVE") == "ACTIVE" else None


def task_definition_revisions(aws, names: Names) -> list[dict]:
    """Every ACTIVE revision of our family, each with its tags (ours or not: see owned_task_definitions)."""
    ecs, family = aws.ecs, names.task_family
    arns = [arn for page in ecs.get_paginator("list_task_definitions").paginate(familyPrefix=family, status="ACTIVE")
            for arn in page["taskDefinitionArns"]]
    found = []
    for arn in arns:
        described = ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
        if described["taskDefinition"]["family"] == family:
            found.append({**described["taskDefinition"], "tags": described.get("tags", [])})
    return found


def owned_task_definitions(aws, names: Names) -> list[dict]:
    """The ACTIVE revisions of our family tagged as ours (what destroy deregisters), with their tags."""
    return [td for td in task_definition_revisions(aws, names) if names.owns(td["tags"])]


def services(aws, names: Names, cluster: str) -> list[dict] | None:
    """The service records ECS has under our service name (any status, with tags); None without the cluster."""
    found = ignore_missing(lambda: aws.ecs.describe_services(cluster=cluster, services=[names.ecs_service],
                                                             include=["TAGS"]), "ClusterNotFoundException")
    return None if found is None else found["services"]


def live_service(names: Names, records: list[dict] | None, cluster: str,
                 statuses: tuple[str, ...] = ("ACTIVE",)) -> dict | None:
    """Of the records `services` found, ours in one of `statuses`; NotOurs when that one is not tagged ours."""
    live = [s for s in records or [] if s.get("status") in statuses]
    if live and not names.owns(live[0].get("tags")):
        raise NotOurs("ECS service", names.ecs_service, live[0].get("serviceArn", ""), where=f" in {cluster}",
                      fix="rename service.name or remove it")
    return live[0] if live else None


def service(aws, names: Names, cluster: str, statuses: tuple[str, ...] = ("ACTIVE",)) -> dict | None:
    """Our service in the cluster (ACTIVE unless `statuses` say otherwise); None when there is none."""
    return live_service(names, services(aws, names, cluster), cluster, statuses)
