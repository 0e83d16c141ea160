"""The export directory's README: how to adopt it, what is there, what was not found."""

from __future__ import annotations

from vpclink_runbooks.export.model import Item
from vpclink_runbooks.export.rendering import AWS_PROVIDER_VERSION, TERRAFORM_VERSION
from vpclink_runbooks.params import Params


def _readme(params: Params, items: list[Item], skipped: dict[str, str]) -> str:
    rows = "\n".join(f"| `{i.address}` | `{i.import_id}` |" for i in items)
    v2 = any(i.tf_type == "aws_api_gateway_integration" and i.live.get("integrationTarget") for i in items)
    v2_note = ("\nThe integration uses a VPC link V2 (`integration_target` names the load balancer): that argument "
               "needs an AWS\nprovider release that supports VPC link V2 for REST APIs (November 2025 or later); "
               "raise the provider version\nin `versions.tf` if `terraform validate` does not know it.\n") if v2 else ""
    missing = "\n".join(f"- `{t}`: {why}" for t, why in skipped.items()) or "- nothing: every kind was found"
    return f"""# Terraform for `{params.environment}` ({params.service.name}), adopted from the runbook

Written by `runbook export {params.environment} --format terraform` from the live state of account
{params.account_id}, region {params.region}. Export only reads; running it again on the same state writes the
same files.

## Adopt it
1. Use credentials for account {params.account_id} (the provider refuses any other: `allowed_account_ids`).
2. `terraform init` (Terraform {TERRAFORM_VERSION}: `import` blocks; AWS provider {AWS_PROVIDER_VERSION}).
3. `terraform plan`: it must show **{len(items)} to import, 0 to add, 0 to change, 0 to destroy**. If it shows
   a change, the resource's argument in `main.tf` differs from what the provider reads back: set it to the
   value the plan shows as current (nothing has been changed yet), and plan again.
4. `terraform apply`: imports into state, changes nothing in AWS. `imports.tf` can then be deleted.
5. From now on change this setup with Terraform only: do not run `runbook apply`, `repair` or `destroy` for
   `{params.environment}` again (`runbook verify` stays useful; it only reads).

## What is here
- `versions.tf`: Terraform and AWS provider versions, the provider's region and account.
- `imports.tf`: one `import` block per resource, with its live id.
- `main.tf`: the resources, with their live arguments and tags; they refer to each other by address
  (listener -> `aws_lb....arn`), and to pre-existing things (VPC, subnets, cluster, instance security groups,
  custom domain, execution role) by literal id: those were not created by the runbook and are not imported.

The integration reads the VPC link id from the stage variable: `"$${{stageVariables.vpcLinkId}}"` is HCL for
the literal `${{stageVariables.vpcLinkId}}`. Only the deployment each stage serves is imported; older
deployments are history that API Gateway deletes with the REST API.
{v2_note}
| address | import id |
| --- | --- |
{rows}

## Not found (nothing imported)
{missing}
"""
