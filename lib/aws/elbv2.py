"""Elastic Load Balancing finders: our load balancer by name, our target groups, a load balancer's listeners.

A finder returns None (or []) when nothing is there; a load balancer of our name that is not tagged as ours
raises errors.NotOurs (list finders leave what is not ours out)."""

from __future__ import annotations

from vpclink_runbooks.aws.missing import NOT_FOUND, ignore_missing
from vpclink_runbooks.errors import NotOurs
from vpclink_runbooks.names import Names

PERMISSIONS = ["elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTags",
               "elasticloadbalancing:DescribeTargetGroups", "elasticloadbalancing:DescribeListeners"]


def tags(aws, arns: list[str]) -> dict[str, list[dict]]:
    """ARN -> tags, for any number of load balancers, target groups or listeners (DescribeTags takes 20)."""
    found: dict[str, list[dict]] = {}
    for start in range(0, len(arns), 20):
        described = aws.elbv2.describe_tags(ResourceArns=arns[start:start + 20])["TagDescriptions"]
        found.update({d["ResourceArn"]: d["Tags"] for d in described})
    return found


def load_balancer(aws, names: Names, name: str | None = None) -> dict | None:
    """Our load balancer named `name` (default: the one params ask for); None when no load balancer has that name."""
    name = name or names.nlb
    lbs = ignore_missing(lambda: aws.elbv2.describe_load_balancers(Names=[name])["LoadBalancers"], *NOT_FOUND["elbv2"])
    if not lbs:
        return None
    lb = lbs[0]
    if not names.owns(tags(aws, [lb["LoadBalancerArn"]]).get(lb["LoadBalancerArn"])):
        raise NotOurs("load balancer", name, lb["LoadBalancerArn"])
    return lb


def target_groups(aws, names: Names) -> list[dict]:
    """Target groups this environment's runbook created, found by name prefix and confirmed by tags."""
    groups = [tg for page in aws.elbv2.get_paginator("describe_target_groups").paginate()
              for tg in page["TargetGroups"] if tg["TargetGroupName"].startswith(names.base + "-")]
    owned = tags(aws, [g["TargetGroupArn"] for g in groups]) if groups else {}
    return [g for g in groups if names.owns(owned.get(g["TargetGroupArn"]))]


def listeners(aws, lb_arn: str) -> list[dict]:
    """The listeners of a load balancer (ours: callers pass what load_balancer found)."""
    return aws.elbv2.describe_listeners(LoadBalancerArn=lb_arn)["Listeners"]
