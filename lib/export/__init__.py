"""Hand over to Terraform: what the runbook created, read live, as `import` blocks and matching resources.

`runbook export ENV --format terraform` finds everything this environment's runbook created the same way
destroy does (by the runbook's names and tags), reads its live attributes, and writes a directory a team can
`terraform init` and `terraform plan`: the plan shows imports only, so the setup is adopted without
recreating anything. Export is read-only: the session refuses every mutating call before it is sent.

The work is a table, KINDS: one row per Terraform resource type, with how to discover the live records,
their import id (the format the AWS provider documents for that type), a stable label, and the resource
body. Kinds reference each other by Terraform address when the referenced resource is exported too
(listener -> aws_lb.x.arn), and fall back to the live literal when it is not (pre-existing resources).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vpclink_runbooks import sandbox_link
from vpclink_runbooks.aws import session as aws_mod
from vpclink_runbooks.context import Context
from vpclink_runbooks.errors import RunbookError
from vpclink_runbooks.export.kinds import kinds
from vpclink_runbooks.export.kinds_api import discover_proxy_resources, discover_rest_apis  # noqa: F401
from vpclink_runbooks.export.kinds_network import owned_security_group_rules, owned_task_definitions  # noqa: F401
from vpclink_runbooks.export.model import Discovery, Item, Kind, Refs, slug  # noqa: F401
from vpclink_runbooks.export.readme import _readme
from vpclink_runbooks.export.rendering import (  # noqa: F401
    AWS_PROVIDER_VERSION,
    HEADER,
    TERRAFORM_VERSION,
    Block,
    Call,
    Ref,
    Template,
    hcl_string,
    render_body,
    render_value,
)
from vpclink_runbooks.names import Names
from vpclink_runbooks.params import Params, load_params

PERMISSIONS = [
    "sts:GetCallerIdentity",
    "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeLoadBalancerAttributes",
    "elasticloadbalancing:DescribeTags", "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeTargetGroups",
    "apigateway:GET",
    "ecs:DescribeServices", "ecs:ListTaskDefinitions", "ecs:DescribeTaskDefinition",
    "ec2:DescribeSecurityGroups", "ec2:DescribeSecurityGroupRules",
]
FORMATS = ("terraform",)


class NothingToExport(RunbookError):
    """Nothing this environment's runbook created exists (never applied, or destroyed); nothing was written."""

    exit_code = 2


# Export's session refuses mutating calls (aws_mod.connect(read_only=...)) with the session-level error.
MutationRefused = aws_mod.MutationRefused

# ---- export --------------------------------------------------------------------------------------------

@dataclass
class Export:
    """What was found (items, in table order) and, per kind, why nothing was when nothing was."""

    params: Params
    items: list[Item]
    skipped: dict[str, str]
    files: dict[str, str]

    def summary(self, out: Path) -> str:
        lines = [f"export {self.params.environment} --format terraform: {len(self.items)} resource(s) to import "
                 f"-> {out}/"]
        lines += [f"  import  {i.address:<70} {i.import_id}" for i in self.items]
        lines += [f"  skipped {tf_type:<70} {why}" for tf_type, why in self.skipped.items()]
        lines.append(f"  next: cd {out} && terraform init && terraform plan  (expect imports only; see README.md)")
        return "\n".join(lines)


def connect(params: Params) -> Context:
    """A read-only context: mutating calls are refused before they are sent."""
    if params.sandbox:
        if not os.environ.get("AWS_ENDPOINT_URL") and sandbox_link.running_sandbox() is None:
            raise NothingToExport(
                "params say sandbox: true but no sandbox is running, so nothing has been applied there (a "
                "sandbox's resources live only as long as it does). Start `runbook sandbox`, run `runbook apply` "
                "against it, then export. Nothing was written.")
        sandbox_link.use_running_sandbox()
    aws = aws_mod.connect(params, read_only="export is read-only")
    identity = aws_mod.check_account(aws, params)
    return Context(params=params, aws=aws, names=Names(params), mode="plan", identity=identity)


def discover(ctx: Context) -> tuple[list[Item], dict[str, str]]:
    """Every live resource of this environment's runbook, as Items in table order; and why kinds are empty."""
    d = Discovery(ctx)
    table: dict[str, Kind] = {}
    for kind in kinds():
        # A type may have several rows (e.g. NLB and ALB discovery); their records go together.
        d.found[kind.tf_type] = d.found.get(kind.tf_type, []) + kind.discover(d)
        table.setdefault(kind.tf_type, kind)
    items: list[Item] = []
    skipped: dict[str, str] = {}
    for tf_type, kind in table.items():
        records = sorted(d.found[tf_type], key=kind.import_id)
        if not records:
            skipped[tf_type] = d.notes.get(tf_type, f"no {kind.what} of this runbook's exists")
        used: set[str] = set()
        for record in records:
            label = kind.label(record)
            if label in used:  # two of a kind with one name (e.g. left by an interrupted run): add the id
                label = slug(f"{label}_{kind.import_id(record).rsplit('/', 1)[-1]}")
            used.add(label)
            items.append(Item(tf_type, label, kind.import_id(record), record))
    return items, skipped


def render(params: Params, items: list[Item], skipped: dict[str, str]) -> dict[str, str]:
    """The files of the export directory, by name; the same live state always gives the same bytes."""
    refs = Refs(items)
    bodies = {k.tf_type: k.body for k in reversed(kinds())}
    header = HEADER.format(env=params.environment)
    versions = "\n".join([
        header.rstrip("\n"), "",
        "terraform {",
        f"  required_version = {hcl_string(TERRAFORM_VERSION)}", "",
        "  required_providers {",
        "    aws = {",
        '      source  = "hashicorp/aws"',
        f"      version = {hcl_string(AWS_PROVIDER_VERSION)}",
        "    }",
        "  }",
        "}", "",
        'provider "aws" {',
        f"  region              = {hcl_string(params.region)}",
        f"  allowed_account_ids = [{hcl_string(params.account_id)}]",
        "}", "",
    ])
    imports = [header]
    resources = [header]
    for item in items:
        imports += ["import {", f"  to = {item.address}", f"  id = {hcl_string(item.import_id)}", "}", ""]
        body = bodies[item.tf_type](item.live, refs)
        resources += [f'resource "{item.tf_type}" "{item.label}" {{', *render_body(body), "}", ""]
    return {
        "versions.tf": versions,
        "imports.tf": "\n".join(imports),
        "main.tf": "\n".join(resources),
        "README.md": _readme(params, items, skipped),
    }

def write(out: Path, files: dict[str, str]) -> None:
    """Write (or overwrite) the export's own files; anything else in the directory (.terraform, state) stays."""
    out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out / name).write_text(text)


def export(env: str, out: str | Path | None = None, fmt: str = "terraform") -> tuple[Export, Path]:
    """Read the live state of ENV and write the Terraform directory; NothingToExport (exit 2) if nothing exists."""
    if fmt not in FORMATS:
        raise NothingToExport(f"--format {fmt!r} is not supported; use one of {', '.join(FORMATS)}")
    params = load_params(env)  # ParamsError: before any AWS call
    ctx = connect(params)
    items, skipped = discover(ctx)
    if not items:
        raise NothingToExport(
            f"nothing to export: no resource of {params.environment}'s runbook exists in account "
            f"{params.account_id}, region {params.region} (never applied, or destroyed). Run `runbook apply "
            f"{env}` first. Nothing was written.")
    target = Path(out) if out else Path("terraform") / params.environment
    files = render(params, items, skipped)
    write(target, files)
    return Export(params, items, skipped, files), target
