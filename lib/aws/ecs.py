"""ECS finders: our task definition family's revisions, our service, the cluster's instances, our tasks' host ports.

A service of our name in the cluster that is not tagged as ours raises errors.NotOurs; the list of task
definitions returns only the revisions tagged as ours."""

from __future__ import annotations

from vpclink_runbooks.aws.missing import ignore_missing
from vpclink_runbooks.errors import NotOurs
from vpclink_runbooks.names import Names

PERMISSIONS = ["ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions", "ecs:DescribeServices",
               "ecs:ListContainerInstances", "ecs:DescribeContainerInstances", "ec2:DescribeInstances",
               "ecs:ListTasks", "ecs:DescribeTasks"]
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


def container_instances(aws, cluster: str) -> list[dict]:
    arns = [a for page in aws.ecs.get_paginator("list_container_instances").paginate(cluster=cluster)
            for a in page["containerInstanceArns"]]
    described = []
    for start in range(0, len(arns), 100):
        described += aws.ecs.describe_container_instances(cluster=cluster, containerInstances=arns[start:start + 100])[
            "containerInstances"]
    if not described:
        return []
    ec2_ids = sorted({c["ec2InstanceId"] for c in described})  # sorted: the same read as verify's
    ec2 = {i["InstanceId"]: i for page in aws.ec2.get_paginator("describe_instances").paginate(InstanceIds=ec2_ids)
           for r in page["Reservations"] for i in r["Instances"]}
    instances = []
    for ci in described:
        inst = ec2.get(ci["ec2InstanceId"], {})
        remaining = ci.get("remainingResources", [])
        ports = next((r.get("stringSetValue", []) for r in remaining if r["name"] == "PORTS"), [])
        instances.append({
            "instance_id": ci["ec2InstanceId"], "container_instance_arn": ci["containerInstanceArn"],
            "status": ci["status"], "az": inst.get("Placement", {}).get("AvailabilityZone", "?"),
            "subnet_id": inst.get("SubnetId"), "private_ip": inst.get("PrivateIpAddress"),
            "state": inst.get("State", {}).get("Name", "unknown"),
            "security_groups": sorted(g["GroupId"] for g in inst.get("SecurityGroups", [])),
            "used_ports": sorted(int(p) for p in ports),
        })
    return sorted(instances, key=lambda i: (i["az"], i["instance_id"]))


def service_ports(aws, cluster: str, service: str) -> dict[str, set[int]]:
    """Host ports our own service's tasks hold on each container instance (they free up on redeploy)."""
    # the same read as verify's (checks.inventory), so a run reads it once
    arns = [a for page in aws.ecs.get_paginator("list_tasks").paginate(
        cluster=cluster, serviceName=service, desiredStatus="RUNNING") for a in page["taskArns"]] if service else []
    held: dict[str, set[int]] = {}
    if arns:
        for task in [t for start in range(0, len(arns), 100)
                     for t in aws.ecs.describe_tasks(cluster=cluster, tasks=arns[start:start + 100])["tasks"]]:
            for container in task.get("containers", []):
                for binding in container.get("networkBindings", []):
                    held.setdefault(task.get("containerInstanceArn", ""), set()).add(binding["hostPort"])
    return held
