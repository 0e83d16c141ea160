"""The parameters model: one YAML per environment, validated before any AWS call."""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vpclink_runbooks.errors import ParamsError
from vpclink_runbooks.params_sections import (
    _NAME,
    ECS_RESERVED_PORTS,
    ELB_NAME_LIMIT,
    EPHEMERAL_PORTS,
    FARGATE_SIZES,
    FIXED_HOST_PORTS,
    HOST_PORT_RULE,
    Api,
    Deployment,
    ExtraPort,
    Nlb,
    Port,
    Service,
    VpcLink,
    _FieldError,
    _Strict,
)

# The sections live in params_sections; these names stay importable from here.
__all__ = ["ECS_RESERVED_PORTS", "ELB_NAME_LIMIT", "EPHEMERAL_PORTS", "FARGATE_SIZES", "FIXED_HOST_PORTS",
           "HOST_PORT_RULE", "Api", "Deployment",
           "ExtraPort", "Nlb", "Params", "Port", "Service", "VpcLink", "load_params", "load_raw", "parse_params",
           "resolve_params_path", "target_group_suffix"]


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
        role = self.service.execution_role
        if role.startswith("arn:") and role.split(":")[4] != self.account_id:
            raise _FieldError(
                "service.execution_role",
                f"the role is in account {role.split(':')[4]} but account_id is {self.account_id}; ECS tasks "
                "assume an execution role of their own account: give a role name or an ARN of this account",
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
                raise _FieldError("service.host_port", f"required for bridge mode behind a network load balancer "
                                  "(the NLB targets a fixed host port); add e.g. host_port: 10000 "
                                  f"({HOST_PORT_RULE}), "
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
            port_hint = f" ({HOST_PORT_RULE})"
        return field, f"must be {lo_hi[kind]}{port_hint}; got {got!r}"
    if kind == "string_pattern_mismatch":
        examples = {
            "vpc_id": "vpc-0a1b2c3d", "region": "eu-west-2", "account_id": '"123456789012" (12 digits)',
            "environment": "dev (lower-case letters, digits, '-')", "name": "orders (lower-case letters, digits, '-')",
            "subnets": "subnet-0a1b2c3d", "domain_name": "api.example.com", "stage": "prod",
            "cluster": "dev-ecs", "role_arn": "arn:aws:iam::123456789012:role/deployer", "image": "repo/image:tag",
            "execution_role": "ecsTaskExecutionRole (a role name) or arn:aws:iam::123456789012:role/path/name "
                              "(a role with a path)",
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


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (plain YAML lets the last one win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise ParamsError([(str(key), f"duplicate key: set on line {seen[key]} and again on line {line} of "
                                    f"{self.name}; keep one (YAML would silently use the last)")])
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> Any:
    loader = _UniqueKeyLoader(path.read_text())
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as exc:
        raise ParamsError([(str(path), f"is not valid YAML: {exc}")]) from None
    finally:
        loader.dispose()


def load_params(env: str | Path) -> Params:
    path = resolve_params_path(env)
    if not path.exists():
        raise ParamsError([(str(env), f"no such parameters file {path}; give an environment name or a YAML path")])
    return parse_params(_read_yaml(path), str(path))


def load_raw(env: str | Path) -> dict:
    path = resolve_params_path(env)
    return _read_yaml(path) if path.exists() else {}
