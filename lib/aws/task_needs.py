"""What the service's tasks need before ECS can start one, read in pre-flight as metadata only.

ECS resolves a task's secrets, assumes its execution role and pulls its image when the task starts; a missing one
shows up minutes after apply as a service that keeps stopping tasks (``task_definition.starts`` in verify).
Pre-flight reads the same three things before any change, so apply refuses with the field and the fix instead:

* every ARN in ``service.secrets`` exists: SSM ``DescribeParameters`` (filtered by name; the value is never
  read), Secrets Manager ``DescribeSecret`` (metadata; ``GetSecretValue`` is never called), each in the ARN's
  region;
* the execution role exists and trusts ``ecs-tasks.amazonaws.com`` (IAM ``GetRole``), when the task definition
  uses it (secrets, or Fargate);
* an image in this account's ECR has its repository and tag (ECR ``DescribeImages``); an image elsewhere (Docker
  Hub, another account's registry) is not read.

An AccessDenied is not a finding: it propagates, naming the action the operator's policy lacks.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import unquote

from botocore.exceptions import ClientError

# IAM actions this module calls (the operator policy is generated from these declarations).
PERMISSIONS = ["ssm:DescribeParameters", "secretsmanager:DescribeSecret", "iam:GetRole", "ecr:DescribeImages"]
ECS_TASKS = "ecs-tasks.amazonaws.com"
# <account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repository>[:tag][@digest]
ECR_IMAGE = re.compile(r"^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/([^:@]+)(?::([^@]+))?(?:@(.+))?$")


@dataclass(frozen=True)
class Need:
    """One thing a task needs that is missing: the params field, what is wrong, and the fix."""

    field: str
    detail: str
    fix: str


# ---- names and ARNs from params ---------------------------------------------------------------------------

def execution_role_arn(params) -> str:
    """service.execution_role as an ARN: a name is a role of this account (path /)."""
    role = params.service.execution_role
    return role if role.startswith("arn:") else f"arn:aws:iam::{params.account_id}:role/{role}"


def execution_role_name(params) -> str:
    """The role's name with its path ("service-role/ecsTaskExecutionRole"), as IAM's role ARNs hold it."""
    return execution_role_arn(params).split(":role/", 1)[1]


def uses_execution_role(params) -> bool:
    """Fargate pulls the image and resolves secrets with the execution role; on EC2 it is needed for secrets only
    (the instance role pulls the image)."""
    return bool(params.service.secrets) or params.service.launch_type == "FARGATE"


def ecr_image(params) -> tuple[str, str, str, str | None, str | None] | None:
    """(account, region, repository, tag, digest) of an image in this account's ECR; None for any other image."""
    match = ECR_IMAGE.match(params.service.image)
    if not match or match.group(1) != params.account_id:
        return None
    account, region, repository, tag, digest = match.groups()
    return account, region, repository, tag if tag or digest else "latest", digest


def secret_id(arn: str) -> str:
    """A Secrets Manager ARN as ECS's valueFrom may hold it (secret:NAME-AbCdEf:json-key:version-stage:version-id)
    without the JSON key and version: the secret's own ARN (complete or partial)."""
    return ":".join(arn.split(":")[:7])


def parameter_name(arn: str) -> str:
    """arn:aws:ssm:R:A:parameter/orders/db -> /orders/db; parameter/plain -> plain (a name without a path)."""
    rest = arn.split(":parameter/", 1)[1]
    return f"/{rest}" if "/" in rest else rest


# ---- the reads --------------------------------------------------------------------------------------------

def _client(aws, service: str, region: str | None = None):
    """A client of the run's session (recorded, the runbook's retries); in another region when the ARN says so."""
    if region is None or region == aws.region:
        return aws.client(service)
    return aws.session.client(service, region_name=region, config=aws.config)


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def missing_secrets(aws, params) -> list[Need]:
    """Every service.secrets ARN that does not exist (or is scheduled for deletion)."""
    needs = []
    for key, arn in sorted(params.service.secrets.items()):
        region, field = arn.split(":")[3], f"service.secrets.{key}"
        if arn.split(":")[2] == "ssm":
            name = parameter_name(arn)
            found = _client(aws, "ssm", region).describe_parameters(
                ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}])["Parameters"]
            if not found:
                needs.append(Need(field, f"SSM parameter {name} does not exist in {region} ({arn})",
                                  f"create it (aws ssm put-parameter --name {name} --type SecureString ...) or fix "
                                  f"{field}"))
            continue
        try:
            secret = _client(aws, "secretsmanager", region).describe_secret(SecretId=secret_id(arn))
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise
            needs.append(Need(field, f"Secrets Manager secret {secret_id(arn)} does not exist",
                              f"create the secret or fix {field} (the ARN of an existing secret)"))
            continue
        if secret.get("DeletedDate"):
            needs.append(Need(field, f"Secrets Manager secret {secret['ARN']} is scheduled for deletion",
                              f"restore it (aws secretsmanager restore-secret) or point {field} at another"))
    return needs


def trusts_ecs_tasks(document) -> bool:
    """Whether a role's trust policy lets ecs-tasks.amazonaws.com assume it (boto3 decodes the URL-encoded JSON;
    a string is decoded here)."""
    if isinstance(document, str):
        try:
            document = json.loads(unquote(document) if document.lstrip().startswith("%") else document)
        except ValueError:
            return False
    statements = (document or {}).get("Statement") or []
    for st in statements if isinstance(statements, list) else [statements]:
        actions = st.get("Action") or []
        actions = [actions] if isinstance(actions, str) else actions
        principal = st.get("Principal") if isinstance(st.get("Principal"), dict) else {}
        services = principal.get("Service") or []
        services = [services] if isinstance(services, str) else services
        if (st.get("Effect") == "Allow" and any(a in ("sts:AssumeRole", "sts:*", "*") for a in actions)
                and ECS_TASKS in services):  # a Condition (aws:SourceAccount, AWS's advice) ECS meets
            return True
    return False


def missing_role(aws, params) -> list[Need]:
    """The execution role, when the task definition uses it: it exists and trusts ecs-tasks.amazonaws.com."""
    if not uses_execution_role(params):
        return []
    arn, name = execution_role_arn(params), execution_role_name(params).rsplit("/", 1)[-1]
    try:
        role = _client(aws, "iam").get_role(RoleName=name)["Role"]
    except ClientError as exc:
        if _code(exc) != "NoSuchEntity":
            raise
        return [Need("service.execution_role", f"role {arn} does not exist",
                     f"create {name} (trusting {ECS_TASKS}, with the AmazonECSTaskExecutionRolePolicy managed "
                     "policy) or set service.execution_role to an existing execution role")]
    if role["Arn"] != arn:
        return [Need("service.execution_role", f"role {name} is {role['Arn']}, not {arn}",
                     f"set service.execution_role to {role['Arn']} (or its name)")]
    if not trusts_ecs_tasks(role.get("AssumeRolePolicyDocument")):
        return [Need("service.execution_role", f"role {arn} does not trust {ECS_TASKS}: ECS cannot assume it, so "
                     "no task starts", f"add a trust statement allowing sts:AssumeRole by the service principal "
                     f"{ECS_TASKS} (aws iam update-assume-role-policy), or use another role")]
    return []


def missing_image(aws, params) -> list[Need]:
    """An image in this account's ECR: its repository exists and holds its tag (or digest)."""
    ref = ecr_image(params)
    if ref is None:
        return []
    account, region, repository, tag, digest = ref
    image_id = {"imageDigest": digest} if digest else {"imageTag": tag}
    try:
        _client(aws, "ecr", region).describe_images(registryId=account, repositoryName=repository,
                                                    imageIds=[image_id])
    except ClientError as exc:
        if _code(exc) == "RepositoryNotFoundException":
            return [Need("service.image", f"ECR repository {repository} does not exist in {region} of {account}",
                         f"push the image to {account}.dkr.ecr.{region}.amazonaws.com/{repository} or fix "
                         "service.image")]
        if _code(exc) == "ImageNotFoundException":
            shown = digest or tag
            return [Need("service.image", f"ECR repository {repository} has no image {shown}",
                         f"push {repository}:{shown} or set service.image to a tag the repository holds "
                         f"(aws ecr describe-images --repository-name {repository})")]
        raise
    return []


def missing(aws, params) -> list[Need]:
    """Everything the tasks need that is not there: secrets, the execution role, the image."""
    return missing_secrets(aws, params) + missing_role(aws, params) + missing_image(aws, params)
