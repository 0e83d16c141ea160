"""The sections of a params file (service, load balancer, VPC link, API) and the limits they are checked
against; params.py assembles them into Params."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# ECS dynamic host ports and the Linux ephemeral range: a fixed host port there collides with
# the ports Docker and the kernel hand out, so the task would fail to start at random.
EPHEMERAL_PORTS = range(32768, 65536)
# Ports the ECS agent reserves on every container instance.
ECS_RESERVED_PORTS = {22, 2375, 2376, 51678, 51679}
# The one rule for a fixed host port (service.host_port, extra_ports[].host_port), named in every message.
# Below 1024: well-known ports of services on the instance itself (sshd on 22, ...). 32768 and up: the
# ephemeral range ECS/Docker assign dynamic host ports from (the kernel's ip_local_port_range, 32768-60999 on
# the ECS-optimized AMI; 49153-65535 when that is unavailable) - AWS says never to fix a host port there.
FIXED_HOST_PORTS = range(1024, 32768)
HOST_PORT_RULE = ("a fixed host port must be between 1024 and 32767 and not 2375/2376 (reserved by the ECS "
                  "agent): lower ports belong to services on the instance, 32768-65535 is the ephemeral range "
                  "ECS hands out")


def host_port_problem(value: int) -> str | None:
    """Why a fixed host port breaks HOST_PORT_RULE, or None."""
    if value in ECS_RESERVED_PORTS:
        why = f"{value} is reserved by the ECS agent"
    elif value in EPHEMERAL_PORTS:
        why = f"{value} is in the ephemeral range 32768-65535 that Docker and ECS hand out"
    elif value not in FIXED_HOST_PORTS:
        why = f"{value} is below 1024 (well-known ports of the instance's own services)"
    else:
        return None
    return f"{why}; {HOST_PORT_RULE}"

# NLB and target group names are limited to 32 characters; ours are "<env>-<service>-<port>".
ELB_NAME_LIMIT = 32
# Fargate accepts only these task sizes: cpu units -> the memory (MiB) allowed with them.
FARGATE_SIZES = {
    256: [512, 1024, 2048],
    512: list(range(1024, 4097, 1024)),
    1024: list(range(2048, 8193, 1024)),
    2048: list(range(4096, 16385, 1024)),
    4096: list(range(8192, 30721, 1024)),
    8192: list(range(16384, 61441, 4096)),
    16384: list(range(32768, 122881, 8192)),
}

_NAME = r"^[a-z][a-z0-9-]*[a-z0-9]$|^[a-z]$"
_SECRET_ARN = re.compile(
    r"^arn:aws[a-z-]*:(ssm:[a-z0-9-]+:\d{12}:parameter/[\w./-]+"
    r"|secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+(:[\w-]*){0,3})$"
)
_SECRET_VALUE_PATTERNS = [
    (re.compile(r"(?i)(password|passwd|pwd|secret|token|api[_-]?key)\s*[=:]"), "contains 'password=' or similar"),
    (re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"), "is a URL with user:password@"),
    # 40 base64 characters, but not 40 lower-case hex digits (a git commit SHA-1 is not a secret).
    (re.compile(r"(?<![A-Za-z0-9/+=])(?![0-9a-f]{40}(?![A-Za-z0-9/+=]))[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"),
     "has the shape of an AWS secret key"),
    (re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), "has the shape of an AWS access key id"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "is a private key"),
]
_SECRET_KEY_NAMES = re.compile(r"(?i)(password|passwd|secret|token|private_key|api_?key|credential)")


class _FieldError(ValueError):
    """A problem that belongs to one named field, relative to the model that raises it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


Port = Annotated[int, Field(ge=1, le=65535, strict=True)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExtraPort(_Strict):
    container_port: Port
    host_port: Port
    expose: bool = False


class Deployment(_Strict):
    # None: the highest value that still lets a fixed-port service roll (see Params below).
    minimum_healthy_percent: Annotated[int, Field(ge=0, le=100, strict=True)] | None = None
    # None: 100 with a fixed host port (no spare instance to start on), 200 otherwise (ECS's default).
    maximum_percent: Annotated[int, Field(ge=100, le=200, strict=True)] | None = None


class Service(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=_NAME)]
    image: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^\S+$")]
    cpu: Annotated[int, Field(ge=0, le=10240, strict=True)] = 128
    memory: Annotated[int, Field(ge=6, le=120000, strict=True)] = 128
    container_port: Port
    # Required for the fixed-port path (bridge mode behind an NLB); left out for dynamic ports (bridge
    # behind an ALB) and awsvpc, where it does not apply.
    host_port: Port | None = None
    # bridge: tasks share the instance's network (host ports); awsvpc: each task gets its own IP (ENI).
    network_mode: Literal["bridge", "awsvpc"] = "bridge"
    launch_type: Literal["EC2", "FARGATE"] = "EC2"
    # awsvpc only: where tasks get their network interfaces; default: the load balancer's subnets.
    subnets: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] | None = None
    desired_count: Annotated[int, Field(ge=1, le=100, strict=True)] = 2
    environment: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict)
    # The role ECS uses to pull the image and resolve secrets: a role name, or its ARN in this account.
    execution_role: Annotated[str, Field(min_length=1, max_length=2048,
                                         pattern=r"^([A-Za-z0-9_+=,.@-]{1,64}|arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]{1,512})$")
                              ] = "ecsTaskExecutionRole"
    health_check_path: str | None = None
    extra_ports: list[ExtraPort] = Field(default_factory=list)
    deployment: Deployment = Field(default_factory=Deployment)

    @field_validator("host_port")
    @classmethod
    def _host_port_fixed(cls, value: int | None) -> int | None:
        problem = None if value is None else host_port_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("environment")
    @classmethod
    def _no_secrets_in_environment(cls, env: dict[str, str]) -> dict[str, str]:
        for key, value in env.items():
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise ValueError(f"variable name {key!r} is not a valid environment variable name")
            if _SECRET_KEY_NAMES.search(key):
                raise _FieldError(
                    key, f"{key} looks like a secret; move it to service.secrets as an SSM or Secrets Manager ARN"
                )
            for pattern, why in _SECRET_VALUE_PATTERNS:
                if pattern.search(str(value)):
                    raise _FieldError(
                        key,
                        f"the value of {key} {why}; plain environment values are recorded in task definitions "
                        "and audit records, so put it in service.secrets as an SSM or Secrets Manager ARN"
                    )
        return env

    @field_validator("secrets")
    @classmethod
    def _secrets_are_arns(cls, secrets: dict[str, str]) -> dict[str, str]:
        for key, value in secrets.items():
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise ValueError(f"variable name {key!r} is not a valid environment variable name")
            if not _SECRET_ARN.match(value):
                raise _FieldError(
                    key,
                    f"{key} must be an ARN, e.g. arn:aws:ssm:<region>:<account>:parameter/<name> or "
                    "arn:aws:secretsmanager:<region>:<account>:secret:<name>; never the secret value itself"
                )
        return secrets

    @field_validator("health_check_path")
    @classmethod
    def _health_path(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^/[\w\-./~%!$&'()*+,;=:@]*$", value):
            raise ValueError("must be null (TCP health check) or an HTTP path starting with '/', e.g. /health")
        return value

    @model_validator(mode="after")
    def _ports_distinct(self) -> Service:
        hosts = [self.host_port]
        containers = [self.container_port]
        for i, p in enumerate(self.extra_ports):
            if p.host_port in hosts:
                raise _FieldError(
                    f"extra_ports.{i}.host_port",
                    f"{p.host_port} is already used; every host port must differ from host_port and from each "
                    f"other; {HOST_PORT_RULE}",
                )
            if p.container_port in containers:
                raise _FieldError(
                    f"extra_ports.{i}.container_port",
                    f"{p.container_port} is already used; every container port must differ from container_port "
                    "and from each other",
                )
            problem = host_port_problem(p.host_port)
            if problem:
                raise _FieldError(f"extra_ports.{i}.host_port", problem)
            hosts.append(p.host_port)
            containers.append(p.container_port)
        both = set(self.environment) & set(self.secrets)
        if both:
            raise _FieldError(
                "secrets", f"{sorted(both)} also set in service.environment; keep each name in one place"
            )
        return self


class Nlb(_Strict):
    """The internal load balancer (`load_balancer:` in params; `nlb:` is the original name and still works)."""

    subnets: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] | None = None
    listener_port: Port | None = None
    # network: TCP, the only type a V1 VPC link can target; application: HTTP, needs vpc_link.version 2.
    type: Literal["network", "application"] = "network"
    # network only: create the NLB with a security group of its own (AWS attaches one only at creation);
    # the instances (or awsvpc tasks) then admit the port from that group instead of the subnets' CIDRs.
    security_group: bool = True


class VpcLink(_Strict):
    """1: the REST API VPC link (apigateway) to an NLB; 2: an apigatewayv2 VPC link in subnets, with its own
    security group, that a REST integration uses with integrationTarget (an NLB or ALB ARN)."""

    version: Literal[1, 2] = 1
    # version 2 only: where the link's network interfaces go; default: the load balancer's subnets.
    subnets: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] | None = None


class Api(_Strict):
    domain_name: Annotated[
        str, Field(min_length=4, max_length=253, pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
    ]
    base_path: Annotated[str, Field(min_length=1, max_length=128)]
    stage: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]

    @field_validator("base_path")
    @classmethod
    def _one_segment(cls, value: str) -> str:
        if value.startswith("/"):
            example = value.strip("/") or "orders"
            raise ValueError(f"{value!r} starts with '/'; drop the leading slash, e.g. {example!r}")
        if "/" in value:
            raise ValueError(
                f"{value!r} contains '/'; a base path is one segment on the custom domain, e.g. 'orders'"
            )
        if not re.match(r"^[A-Za-z0-9._-]+$", value):
            raise ValueError("use letters, digits, '.', '_' or '-', e.g. 'orders'")
        return value
