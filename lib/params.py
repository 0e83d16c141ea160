"""The parameters model: one YAML per environment, validated before any AWS call."""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vpclink_runbooks.errors import ParamsError

# ECS dynamic host ports and the Linux ephemeral range: a fixed host port there collides with
# the ports Docker and the kernel hand out, so the task would fail to start at random.
EPHEMERAL_PORTS = range(32768, 65536)
# Ports the ECS agent reserves on every container instance.
ECS_RESERVED_PORTS = {22, 2375, 2376, 51678, 51679}
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
    health_check_path: str | None = None
    extra_ports: list[ExtraPort] = Field(default_factory=list)
    deployment: Deployment = Field(default_factory=Deployment)

    @field_validator("host_port")
    @classmethod
    def _host_port_fixed(cls, value: int | None) -> int | None:
        if value is None:
            return value
        if value in ECS_RESERVED_PORTS:
            raise ValueError(f"{value} is reserved by the ECS agent; choose another port between 1024 and 32767")
        if value in EPHEMERAL_PORTS:
            raise ValueError(
                f"{value} is in the ephemeral range 32768-65535 that Docker and ECS hand out; "
                "choose a fixed host port between 1024 and 32767"
            )
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
                    "other, choose another between 1024 and 32767",
                )
            if p.container_port in containers:
                raise _FieldError(
                    f"extra_ports.{i}.container_port",
                    f"{p.container_port} is already used; every container port must differ from container_port "
                    "and from each other",
                )
            if p.host_port in EPHEMERAL_PORTS or p.host_port in ECS_RESERVED_PORTS:
                raise _FieldError(
                    f"extra_ports.{i}.host_port",
                    f"{p.host_port} is ephemeral or reserved; choose a fixed host port between 1024 and 32767",
                )
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
        if "/" in value:
            raise ValueError(
                f"{value!r} contains '/'; a base path is one segment on the custom domain, e.g. 'orders'"
            )
        if not re.match(r"^[A-Za-z0-9._-]+$", value):
            raise ValueError("use letters, digits, '.', '_' or '-', e.g. 'orders'")
        return value


class Params(_Strict):
    environment: Annotated[str, Field(min_length=1, max_length=16, pattern=_NAME)]
    sandbox: bool = False
    protected: bool = False
    region: Annotated[str, Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")]
    account_id: Annotated[str, Field(pattern=r"^\d{12}$")]
    aws_profile: str | None = None
    role_arn: Annotated[str, Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")] | None = None
    vpc_id: Annotated[str, Field(pattern=r"^vpc-[0-9a-f]{8,17}$")]
    cluster: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_-]+$")]
    service: Service
    nlb: Nlb = Field(default_factory=Nlb, validation_alias=AliasChoices("load_balancer", "nlb"))
    vpc_link: VpcLink = Field(default_factory=VpcLink)
    api: Api

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _one_load_balancer_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and "nlb" in data and "load_balancer" in data:
            raise _FieldError("load_balancer", "both load_balancer and nlb are set; they are the same section, "
                              "keep one (load_balancer)")
        return data

    @field_validator("account_id", mode="before")
    @classmethod
    def _account_as_string(cls, value: Any) -> Any:
        if isinstance(value, int):
            raise ValueError('quote it so leading zeros survive YAML, e.g. account_id: "012345678901"')
        return value

    @model_validator(mode="after")
    def _cross_field(self) -> Params:
        suffix = len(target_group_suffix(self, 65535))
        longest = f"{self.environment}-{self.service.name}{'x' * suffix}"
        if len(longest) > ELB_NAME_LIMIT:
            raise _FieldError(
                "service.name",
                f"'{self.environment}-{self.service.name}{target_group_suffix(self, 0)[:-1]}<port>' must fit the "
                "32-character limit of load balancer and target group names; shorten service.name to at most "
                f"{ELB_NAME_LIMIT - len(self.environment) - 1 - suffix} characters",
            )
        self._check_path()
        for key, arn in self.service.secrets.items():
            account = arn.split(":")[4]
            if account != self.account_id:
                raise _FieldError(
                    f"service.secrets.{key}",
                    f"the ARN is in account {account} but account_id is {self.account_id}; "
                    "reference a secret of this account",
                )
        if self.role_arn and self.role_arn.split(":")[4] != self.account_id:
            raise _FieldError(
                "role_arn",
                f"the role is in another account than account_id {self.account_id}; "
                f"use a role of account {self.account_id}",
            )
        if self.nlb.listener_port is not None:
            exposed = [p.host_port for p in self.service.extra_ports if p.expose]
            if self.nlb.listener_port in exposed:
                raise _FieldError(
                    "nlb.listener_port",
                    f"{self.nlb.listener_port} is also the listener of an exposed extra port; choose another",
                )
        dep = self.service.deployment
        if dep.minimum_healthy_percent is not None and dep.minimum_healthy_percent > self.maximum_percent:
            raise _FieldError("service.deployment.minimum_healthy_percent", "must not exceed maximum_percent")
        return self

    def _check_path(self) -> None:
        """Combinations AWS refuses or that cannot work, refused here with the field and the fix."""
        s, lb, link = self.service, self.nlb, self.vpc_link
        if link.version == 1 and lb.type == "application":
            raise _FieldError("load_balancer.type", "a REST API VPC link V1 targets only a network load balancer; "
                              "set vpc_link.version: 2 to use an application load balancer, or "
                              "load_balancer.type: network")
        if link.version == 1 and link.subnets:
            raise _FieldError("vpc_link.subnets", "only a V2 VPC link has subnets (a V1 link uses the NLB's); "
                              "remove vpc_link.subnets or set vpc_link.version: 2")
        if s.launch_type == "FARGATE" and s.network_mode != "awsvpc":
            raise _FieldError("service.network_mode", "Fargate tasks run only in awsvpc mode; set "
                              "service.network_mode: awsvpc (or service.launch_type: EC2 for bridge)")
        if s.launch_type == "FARGATE":
            allowed = FARGATE_SIZES.get(s.cpu)
            if allowed is None:
                raise _FieldError("service.cpu", f"{s.cpu} is not a Fargate task size; use one of "
                                  f"{sorted(FARGATE_SIZES)} (e.g. 256 with memory 512)")
            if s.memory not in allowed:
                raise _FieldError("service.memory", f"{s.memory} MiB does not go with cpu {s.cpu} on Fargate; "
                                  f"use one of {allowed[0]}..{allowed[-1]} ({len(allowed)} sizes, e.g. {allowed[0]})")
        if s.subnets and s.network_mode != "awsvpc":
            raise _FieldError("service.subnets", "task subnets apply only to awsvpc mode; remove service.subnets "
                              "or set service.network_mode: awsvpc")
        if self.fixed_host_port:
            if s.host_port is None:
                raise _FieldError("service.host_port", "required for bridge mode behind a network load balancer "
                                  "(the NLB targets a fixed host port); add e.g. host_port: 10000 (1024-32767), "
                                  "or use load_balancer.type: application (dynamic ports) or network_mode: awsvpc")
            return
        if s.network_mode == "awsvpc" and s.host_port not in (None, s.container_port):
            raise _FieldError("service.host_port", f"in awsvpc mode the host port is the container port "
                              f"({s.container_port}); remove service.host_port")
        if s.network_mode == "bridge" and s.host_port is not None:
            raise _FieldError("service.host_port", "behind an application load balancer bridge tasks get dynamic "
                              "host ports (32768-65535); remove service.host_port, or use "
                              "load_balancer.type: network for a fixed host port")
        if s.extra_ports:
            raise _FieldError("service.extra_ports", "extra ports are supported on the fixed-port path only "
                              "(bridge behind a network load balancer); remove them or use that path")

    # Derived values every step uses.
    @property
    def fixed_host_port(self) -> bool:
        """The 2017 path: bridge mode behind an NLB, one fixed host port, so one task per instance."""
        return self.service.network_mode == "bridge" and self.nlb.type == "network"

    @property
    def dynamic_host_ports(self) -> bool:
        """Bridge mode behind an ALB: ECS picks an ephemeral host port per task (hostPort 0)."""
        return self.service.network_mode == "bridge" and self.nlb.type == "application"

    @property
    def awsvpc(self) -> bool:
        return self.service.network_mode == "awsvpc"

    @property
    def target_port(self) -> int:
        """The port a target group is created with: the fixed host port, else the container port."""
        return self.service.host_port if self.fixed_host_port else self.service.container_port

    @property
    def listener_port(self) -> int:
        return self.nlb.listener_port or self.service.host_port or self.service.container_port

    @property
    def minimum_healthy_percent(self) -> int:
        """Highest minimumHealthyPercent that still lets ECS stop one old task to free its fixed port."""
        if self.service.deployment.minimum_healthy_percent is not None:
            return self.service.deployment.minimum_healthy_percent
        if not self.fixed_host_port:
            return 100
        desired = self.service.desired_count
        return math.floor(100 * (desired - 1) / desired)

    @property
    def maximum_percent(self) -> int:
        if self.service.deployment.maximum_percent is not None:
            return self.service.deployment.maximum_percent
        return 100 if self.fixed_host_port else 200

    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def target_group_suffix(params: Params, port: int) -> str:
    """What follows "<env>-<service>" in a target group name: the kind of target and its port."""
    if params.awsvpc:
        return f"-ip{port}"
    if params.dynamic_host_ports:
        return f"-dyn{port}"
    return f"-{port}"


class _FieldError(ValueError):
    """A problem that belongs to one named field, relative to the model that raises it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def _fields_of(model: type[BaseModel], loc: tuple) -> list[str]:
    """Valid keys at a location, to suggest the right spelling of an unknown key."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", {})
        field = fields.get(part) or fields.get({"load_balancer": "nlb"}.get(part, part))
        if field is None:
            return []
        annotation = field.annotation
        for candidate in getattr(annotation, "__args__", ()) + (annotation,):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                current = candidate
                break
            inner = getattr(candidate, "__args__", ())
            found = [a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)]
            if found:
                current = found[0]
                break
    return list(getattr(current, "model_fields", {}))


def _explain(error: dict) -> tuple[str, str]:
    loc = tuple(error["loc"])
    field = ".".join(str(part) for part in loc) or "(top level)"
    kind = error["type"]
    got = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        valid = _fields_of(Params, loc)
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return field, f"unknown key; {hint}valid keys here: {', '.join(valid)}"
    if kind == "missing":
        return field, "required; add it (see params/dev.yaml for an example)"
    if kind in ("greater_than_equal", "less_than_equal"):
        lo_hi = {"greater_than_equal": f"at least {ctx.get('ge')}", "less_than_equal": f"at most {ctx.get('le')}"}
        port_hint = " (a TCP port is 1-65535)" if field.endswith("port") else ""
        if field.endswith("host_port"):
            port_hint = " (choose a fixed host port between 1024 and 32767)"
        return field, f"must be {lo_hi[kind]}{port_hint}; got {got!r}"
    if kind == "string_pattern_mismatch":
        examples = {
            "vpc_id": "vpc-0a1b2c3d", "region": "eu-west-2", "account_id": '"123456789012" (12 digits)',
            "environment": "dev (lower-case letters, digits, '-')", "name": "orders (lower-case letters, digits, '-')",
            "subnets": "subnet-0a1b2c3d", "domain_name": "api.example.com", "stage": "prod",
            "cluster": "dev-ecs", "role_arn": "arn:aws:iam::123456789012:role/deployer", "image": "repo/image:tag",
        }
        key = next((str(p) for p in reversed(loc) if isinstance(p, str)), field)
        example = examples.get(key)
        return field, f"{got!r} is not valid" + (f"; expected something like {example}" if example else "")
    if kind in ("string_too_short",):
        example = {"name": "orders", "base_path": "orders", "environment": "dev", "stage": "prod"}.get(str(loc[-1]))
        return field, "must not be empty" + (f"; e.g. {example}" if example else "")
    if kind in ("string_too_long",):
        return field, f"at most {ctx.get('max_length')} characters (AWS limit); got {len(str(got))}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return field, f"must be a whole number; got {got!r}"
    if kind in ("bool_type", "bool_parsing"):
        return field, f"must be true or false; got {got!r}"
    if kind in ("string_type",):
        return field, f"must be a string; got {got!r}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return field, f"must be a mapping of keys to values; got {got!r}"
    if kind in ("list_type",):
        return field, f"must be a list; got {got!r}"
    message = error.get("msg", "invalid").removeprefix("Value error, ")
    return field, message


def _problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for error in exc.errors():
        original = (error.get("ctx") or {}).get("error")
        if isinstance(original, _FieldError):
            prefix = [str(part) for part in error["loc"]]
            problems.append((".".join([*prefix, original.field]), original.message))
        else:
            problems.append(_explain(error))
    return problems


def parse_params(data: Any, source: str = "parameters") -> Params:
    """Validate a mapping; raise ParamsError naming every bad field and its fix."""
    if not isinstance(data, dict):
        raise ParamsError([(source, "must be a YAML mapping of keys (environment, region, ...) to values")])
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        raise ParamsError(_problems(exc)) from None


def resolve_params_path(env: str | Path) -> Path:
    """ENV is `params/ENV.yaml` or a path to a YAML file."""
    path = Path(env)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    for base in (Path.cwd(), Path(__file__).resolve().parent.parent):
        candidate = base / "params" / f"{env}.yaml"
        if candidate.exists():
            return candidate
    return Path("params") / f"{env}.yaml"


def load_params(env: str | Path) -> Params:
    path = resolve_params_path(env)
    if not path.exists():
        raise ParamsError([(str(env), f"no such parameters file {path}; give an environment name or a YAML path")])
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError([(str(path), f"is not valid YAML: {exc}")]) from None
    return parse_params(data, str(path))


def load_raw(env: str | Path) -> dict:
    path = resolve_params_path(env)
    return yaml.safe_load(path.read_text()) if path.exists() else {}
