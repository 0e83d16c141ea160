"""EC2 finders: our security groups and the ingress rules we tagged."""

from __future__ import annotations

from vpclink_runbooks.context import Context
from vpclink_runbooks.errors import StepFailed
from vpclink_runbooks.names import TAG_ENV


def find_security_group(ctx: Context, name: str) -> dict | None:
    """Our security group of that name in the VPC; refuses one of that name that is not tagged as ours."""
    groups = ctx.aws.ec2.describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [ctx.params.vpc_id]}, {"Name": "group-name", "Values": [name]}])["SecurityGroups"]
    if not groups:
        return None
    if not ctx.names.owns(groups[0].get("Tags")):
        raise StepFailed(f"a security group named {name} exists in {ctx.params.vpc_id} ({groups[0]['GroupId']}) but "
                         "is not tagged as this runbook's; rename the environment or remove it")
    return groups[0]


def owned_rules(ctx: Context, group_id: str) -> list[dict]:
    rules = [r for page in ctx.aws.ec2.get_paginator("describe_security_group_rules").paginate(
        Filters=[{"Name": "group-id", "Values": [group_id]}]) for r in page["SecurityGroupRules"]]
    return [r for r in rules if not r["IsEgress"] and ctx.names.owns(r.get("Tags"))]


def owned_security_groups(ctx: Context) -> list[dict]:
    groups = [g for page in ctx.aws.ec2.get_paginator("describe_security_groups").paginate(
        Filters=[{"Name": "vpc-id", "Values": [ctx.params.vpc_id]},
                 {"Name": f"tag:{TAG_ENV}", "Values": [ctx.params.environment]}]) for g in page["SecurityGroups"]]
    return [g for g in groups if ctx.names.owns(g.get("Tags"))]
