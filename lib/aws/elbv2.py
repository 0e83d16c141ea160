"""Elastic Load Balancing finders: our load balancer by name, our target groups."""

from __future__ import annotations

from botocore.exceptions import ClientError

from vpclink_runbooks.context import Context
from vpclink_runbooks.errors import StepFailed


def find_load_balancer(ctx: Context) -> dict | None:
    try:
        lbs = ctx.aws.elbv2.describe_load_balancers(Names=[ctx.names.nlb])["LoadBalancers"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "LoadBalancerNotFound":
            raise
        return None
    lb = lbs[0]
    tags = ctx.aws.elbv2.describe_tags(ResourceArns=[lb["LoadBalancerArn"]])["TagDescriptions"][0]["Tags"]
    if not ctx.names.owns(tags):
        raise StepFailed(f"a load balancer named {ctx.names.nlb} exists but is not tagged as this runbook's "
                         f"({lb['LoadBalancerArn']}); rename the environment or remove it")
    return lb


def owned_target_groups(ctx: Context) -> list[dict]:
    """Target groups this environment's runbook created, found by name prefix and confirmed by tags."""
    groups = [tg for page in ctx.aws.elbv2.get_paginator("describe_target_groups").paginate()
              for tg in page["TargetGroups"] if tg["TargetGroupName"].startswith(ctx.names.base + "-")]
    if not groups:
        return []
    owned = []
    for start in range(0, len(groups), 20):
        chunk = groups[start:start + 20]
        described = ctx.aws.elbv2.describe_tags(ResourceArns=[g["TargetGroupArn"] for g in chunk])["TagDescriptions"]
        tags = {d["ResourceArn"]: d["Tags"] for d in described}
        owned += [g for g in chunk if ctx.names.owns(tags.get(g["TargetGroupArn"]))]
    return owned
