"""The HCL writer: Terraform values (references, templates, calls, nested blocks) and block bodies,
formatted as `terraform fmt` does."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# import blocks exist since Terraform 1.5; aws_vpc_security_group_ingress_rule since AWS provider 5.0.
TERRAFORM_VERSION = ">= 1.5.0"
AWS_PROVIDER_VERSION = ">= 5.0"
HEADER = "# Written by `runbook export {env} --format terraform` from the live state; see README.md.\n"


# ---- HCL values ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ref:
    """A Terraform expression written as is, e.g. aws_lb.local_orders_nlb.arn."""

    expr: str


@dataclass(frozen=True)
class Template:
    """A string with interpolations: parts are literal strings or Refs."""

    parts: tuple


@dataclass(frozen=True)
class Call:
    """A function call with one argument, e.g. jsonencode([...])."""

    function: str
    argument: Any


@dataclass(frozen=True)
class Block:
    """A nested block (health_check { ... }) rather than an attribute holding an object."""

    body: dict


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def hcl_string(text: str) -> str:
    """A quoted HCL string whose value is exactly `text`: `${` and `%{` are escaped, so an API Gateway
    stage-variable expression like ${stageVariables.vpcLinkId} stays literal instead of interpolating."""
    escaped = (text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
               .replace("\t", "\\t").replace("${", "$${").replace("%{", "%%{"))
    return f'"{escaped}"'


def _key(key: str) -> str:
    return key if _IDENTIFIER.match(key) else hcl_string(key)


def render_value(value: Any, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(value, Ref):
        return value.expr
    if isinstance(value, Template):
        return '"' + "".join("${" + p.expr + "}" if isinstance(p, Ref) else hcl_string(p)[1:-1]
                             for p in value.parts) + '"'
    if isinstance(value, Call):
        return f"{value.function}({render_value(value.argument, indent)})"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return hcl_string(value)
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        if all(isinstance(v, (str, int, float, bool, Ref)) for v in value):
            return "[" + ", ".join(render_value(v) for v in value) + "]"
        items = [f"{pad}  {render_value(v, indent + 1)}," for v in value]
        return "[\n" + "\n".join(items) + f"\n{pad}]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{\n" + "\n".join(_attribute_lines(value, indent + 1)) + f"\n{pad}}}"
    raise TypeError(f"cannot write {type(value).__name__} as HCL: {value!r}")


def _attribute_lines(body: dict, indent: int) -> list[str]:
    """`key = value` lines, the `=` aligned within each run of single-line attributes (as terraform fmt)."""
    pad = "  " * indent
    rendered = [(_key(k), render_value(v, indent)) for k, v in body.items()]
    lines: list[str] = []
    run: list[tuple[str, str]] = []

    def flush() -> None:
        width = max((len(k) for k, _ in run), default=0)
        lines.extend(f"{pad}{k.ljust(width)} = {v}" for k, v in run)
        run.clear()

    for key, text in rendered:
        if "\n" in text:
            flush()
            lines.append(f"{pad}{key} = {text}")
        else:
            run.append((key, text))
    flush()
    return lines


def render_body(body: dict, indent: int = 1) -> list[str]:
    """A block body: attributes first (aligned), then nested blocks, each after a blank line."""
    pad = "  " * indent
    attributes = {k: v for k, v in body.items() if not _is_blocks(v)}
    lines = _attribute_lines(attributes, indent)
    for name, value in body.items():
        if not _is_blocks(value):
            continue
        for block in value if isinstance(value, list) else [value]:
            lines += ["", f"{pad}{name} {{", *render_body(block.body, indent + 1), f"{pad}}}"]
    return lines


def _is_blocks(value: Any) -> bool:
    return isinstance(value, Block) or (isinstance(value, list) and bool(value)
                                        and all(isinstance(v, Block) for v in value))
