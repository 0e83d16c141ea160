"""EC2 finders: our security groups and the ingress rules we tagged.

A security group of our name in the VPC that is not tagged as ours raises errors.NotOurs; list finders
return only what is tagged as ours."""

from __future__ import annotations

from vpclink_runbooks.errors import NotOurs
from vpclink_runbooks.names import TAG_ENV, Names

PERMISSIONS = ["ec2:DescribeSecurityGroups", "ec2:DescribeSecurityGroupRules"]


def security_group(aws, names: Names, vpc_id: str, name: str) -> dict | None:
    """Our security group of that name in the VPC; None when the VPC has no group of that name."""
    groups = aws.ec2.describe_security_groups(Filters=[
        {"Name": "vpc-id", "Values": [vpc_id]}, {"Name": "group-name", "Values": [name]}])["SecurityGroups"]
    if not groups:
        return None
    if not names.owns(groups[0].get("Tags")):
        raise NotOurs("security group", name, groups[0]["GroupId"], where=f" in {vpc_id}")
    return groups[0]


def security_groups(aws, names: Names, vpc_id: str, environment: str) -> list[dict]:
    """Every security group of the VPC tagged as ours (V2 link, ALB, awsvpc tasks: whatever the runbook made)."""
    groups = [g for page in aws.ec2.get_paginator("describe_security_groups").paginate(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]},
                 {"Name": f"tag:{TAG_ENV}", "Values": [environment]}]) for g in page["SecurityGroups"]]
    return [g for g in groups if names.owns(g.get("Tags"))]


def inbound_rules(aws, group_ids: list[str]) -> list[dict]:
    """Every ingress rule of these groups (whoever made it)."""
    if not group_ids:
        return []
    return [r for page in aws.ec2.get_paginator("describe_security_group_rules").paginate(
        Filters=[{"Name": "group-id", "Values": group_ids}]) for r in page["SecurityGroupRules"] if not r["IsEgress"]]


def owned_rules(aws, names: Names, group_id: str) -> list[dict]:
    """The ingress rules of one group that we tagged as ours."""
    return [r for r in inbound_rules(aws, [group_id]) if names.owns(r.get("Tags"))]


def owned_rules_in_vpc(aws, names: Names, vpc_id: str) -> list[dict]:
    """The ingress rules tagged as ours in any security group of the VPC (what destroy revokes)."""
    group_ids = [g["GroupId"] for page in aws.ec2.get_paginator("describe_security_groups").paginate(
        Filters=[{"Name": "vpc-id", "Values": [vpc_id]}]) for g in page["SecurityGroups"]]
    return [r for r in inbound_rules(aws, group_ids) if names.owns(r.get("Tags"))]
