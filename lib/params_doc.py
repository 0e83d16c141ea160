"""Generate docs/params.md from the params model: `python -m vpclink_runbooks.params_doc --write`."""

from __future__ import annotations

import sys
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from vpclink_runbooks.params import HOST_PORT_RULE, Params

DOC = Path(__file__).resolve().parent.parent / "docs" / "params.md"

# What each key is for, where the model carries no Field(description=...).
DESCRIPTIONS = {
    "environment": "Name of the environment; prefixes every resource name (`<environment>-<service.name>`).",
    "sandbox": "true: run against the embedded sandbox (moto), never real AWS.",
    "protected": "true: changing runs refuse unless given `--confirm ENV@ACCOUNT` (exit 2).",
    "region": "AWS region every call goes to, e.g. eu-west-2.",
    "account_id": "The 12-digit account the credentials must belong to (quoted); a run refuses another account.",
    "aws_profile": "Named profile of ~/.aws/config to start from; null: boto3's standard credential chain.",
    "role_arn": "Role assumed (sts:AssumeRole) after the profile/chain credentials; must be in account_id.",
    "vpc_id": "The VPC holding the cluster instances, the load balancer and the VPC link.",
    "cluster": "The existing ECS cluster the service runs in.",
    "service": "The ECS service and its task definition.",
    "service.name": "Service name; part of every resource name (32-character ELB name limit).",
    "service.image": "Container image, e.g. repo/image:tag.",
    "service.cpu": "Task CPU units (Fargate: a Fargate size).",
    "service.memory": "Task memory in MiB (Fargate: a size allowed with cpu).",
    "service.container_port": "Port the container listens on (any TCP port 1-65535; it is inside the container).",
    "service.host_port": f"Fixed host port, bridge behind an NLB only; {HOST_PORT_RULE}.",
    "service.network_mode": "bridge (host ports) or awsvpc (one ENI per task, IP targets).",
    "service.launch_type": "EC2 or FARGATE (FARGATE needs awsvpc).",
    "service.subnets": "awsvpc only: task subnets; default the load balancer's.",
    "service.desired_count": "Number of tasks.",
    "service.environment": "Plain environment variables (never secrets: they are recorded).",
    "service.secrets": "Variable name -> SSM parameter or Secrets Manager ARN of this account.",
    "service.execution_role": "Task execution role (name or ARN in this account): pulls the image, resolves "
                              "secrets; must exist and trust ecs-tasks.amazonaws.com.",
    "service.health_check_path": "null: TCP health check; else an HTTP path starting with '/'.",
    "service.extra_ports": "More container ports, fixed-port path only.",
    "service.extra_ports[].container_port": "Container port of the extra mapping.",
    "service.extra_ports[].host_port": f"Its fixed host port; {HOST_PORT_RULE}.",
    "service.extra_ports[].expose": "true: the NLB gets a listener and target group for it.",
    "service.deployment": "Rolling deployment limits.",
    "service.deployment.minimum_healthy_percent": "null: the highest value that still lets a fixed-port "
                                                  "service roll (100 otherwise).",
    "service.deployment.maximum_percent": "null: 100 with a fixed host port, 200 otherwise.",
    "nlb": "The internal load balancer (`load_balancer:`; `nlb:` still works).",
    "nlb.subnets": "Load balancer subnets; default one private subnet per AZ with cluster instances.",
    "nlb.listener_port": "Listener port (any TCP port 1-65535); default host_port, else container_port.",
    "nlb.type": "network (TCP; the only type a V1 link targets) or application (HTTP; needs vpc_link.version 2).",
    "nlb.security_group": "Network only: true creates the NLB with its own security group, which the instances "
                          "admit; false admits the NLB subnets' CIDRs. Takes effect only when the NLB is created.",
    "vpc_link": "The API Gateway VPC link.",
    "vpc_link.version": "1: REST VPC link to an NLB; 2: apigatewayv2 link with integrationTarget.",
    "vpc_link.subnets": "Version 2 only: the link's subnets; default the load balancer's.",
    "api": "The REST API and its custom domain.",
    "api.domain_name": "Existing custom domain name the API is mapped on.",
    "api.base_path": "One path segment without slashes (`orders`, not `/orders`).",
    "api.stage": "Stage name.",
}

PROSE = f"""
## Host ports: one rule

{HOST_PORT_RULE[0].upper() + HOST_PORT_RULE[1:]}. It applies to `service.host_port` and
`service.extra_ports[].host_port` (the only fixed host ports; container and listener ports may be any TCP port
1-65535; the model's own bound on every port is 1-65535, the rule is checked on top).
Why: ECS assigns dynamic host ports (bridge behind an ALB, hostPort 0) from the instance's ephemeral
range (`/proc/sys/net/ipv4/ip_local_port_range`, 32768-60999 on the ECS-optimized AMI; 49153-65535 when that is
unavailable), and the ECS PortMapping documentation says not to fix a host port there; the ECS agent reserves
22, 2375, 2376, 51678 and 51679; ports below 1024 belong to the instance's own services (sshd on 22, ...).

## Credentials: aws_profile and role_arn

Credentials are found by boto3's standard chain (environment variables, shared config, instance or container
role). `aws_profile` names a profile of that config to start from instead. When `role_arn` is set, the runbook
then assumes that role and uses its credentials; the role must be in `account_id`, and every run checks the
caller's account against `account_id` before changing anything.

## base_path

One segment on the custom domain: letters, digits, `.`, `_`, `-`. `/orders` is refused ("drop the leading
slash"), `orders/v1` is refused (one segment).

## protected and confirm

`protected: true` makes changing runs (`apply`, `destroy`) refuse (exit 2, nothing changed) unless given
`--confirm ENV@ACCOUNT`, the environment and its account_id, so a run cannot hit production by a typo.

## Duplicate keys

A key given twice in one mapping, at any level, is an error naming the key and both lines.

## Files, unknown keys, secrets, deployment

One YAML per environment in `params/` (`local.yaml` runs on the sandbox; `dev`, `staging`, `prod` are
realistic examples). Unknown keys are errors, and every error names the field and what would be valid,
before any AWS call. `service.deployment: {{minimum_healthy_percent, maximum_percent}}` is optional: by
default it is the highest minimum that still lets a fixed-port service roll (`100*(desired-1)/desired`) and
a maximum of 100. Plans that could never roll, or a desired count larger than the instances that have the
host port free, are refused at plan time with the reason.

Secrets are only ever ARNs (`service.secrets`); a plain `service.environment` value that looks like a
credential is refused. With secrets, the task definition uses the account's `ecsTaskExecutionRole`.
"""


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        for inner in get_args(candidate):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return None


def _unwrap(annotation: Any) -> tuple[str, list[Any]]:
    """A readable type name and the constraint objects inside Annotated/Optional/list."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        name, found = _unwrap(args[0])
        return name, found + list(args[1:])
    if origin in (Union, UnionType):
        parts = [_unwrap(a) for a in args]
        return " | ".join(n for n, _ in parts), [c for _, cs in parts for c in cs]
    if origin is list:
        name, found = _unwrap(args[0])
        return f"list[{name}]", found
    if origin is dict:
        return f"dict[{_unwrap(args[0])[0]}, {_unwrap(args[1])[0]}]", []
    if origin is Literal:
        return " | ".join(repr(a) for a in args), []
    return ("null" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))), []


def _constraint_text(item: Any) -> list[str]:
    if isinstance(item, FieldInfo):
        return [t for m in item.metadata for t in _constraint_text(m)]
    text = repr(item)
    if "strict" in text:
        return []
    for attr in ("ge", "le", "min_length", "max_length", "pattern"):
        if hasattr(item, attr) and getattr(item, attr) is not None:
            value = getattr(item, attr)
            return [f"{attr} `{value}`" if attr == "pattern" else f"{attr} {value}"]
    return []


def _constraints(field) -> tuple[str, str]:
    name, found = _unwrap(field.annotation)
    texts = [t for item in [*field.metadata, *found] for t in _constraint_text(item)]
    return name.replace("|", "\\|"), ", ".join(texts).replace("|", "\\|")


def _rows(model: type[BaseModel], prefix: str = "") -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        required = field.is_required()
        if field.default_factory is not None:
            default = repr(field.default_factory())
        elif field.default is PydanticUndefined:
            default = ""
        else:
            default = repr(field.default)
        sub = _model_of(field.annotation)
        plain_type, constraints = _constraints(field)
        type_name = (f"list[{sub.__name__}]" if "list[" in str(field.annotation) else sub.__name__) if sub \
            else plain_type
        description = field.description or DESCRIPTIONS[key]
        cells = [f"`{key}`", type_name, "yes" if required else "no", default if sub is None else "",
                 constraints, description]
        rows.append("| " + " | ".join(cells) + " |")
        if sub is not None:
            is_list = "list[" in str(field.annotation)
            rows += _rows(sub, f"{key}[]." if is_list else f"{key}.")
    return rows


def render() -> str:
    head = ["# Parameters", "",
            "Generated from the params model (lib/params.py, lib/params_sections.py) by "
            "`python -m vpclink_runbooks.params_doc --write`; do not edit by hand.", "",
            "| key | type | required | default | constraints | description |",
            "|---|---|---|---|---|---|"]
    return "\n".join(head + _rows(Params)) + "\n" + PROSE


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--write"]:
        DOC.write_text(render())
    else:
        sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
