"""The one "not found -> None" helper: a read that may find nothing calls AWS through this."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import ClientError

T = TypeVar("T")

# The error codes by which each service says "no such resource" (AWS's documented error shapes).
NOT_FOUND = {
    "apigateway": ("NotFoundException",),
    "apigatewayv2": ("NotFoundException",),
    "elbv2": ("LoadBalancerNotFound", "TargetGroupNotFound", "ListenerNotFound"),
    "ecs": ("ServiceNotFoundException", "ClusterNotFoundException"),
    "ec2": ("InvalidGroup.NotFound", "InvalidSecurityGroupRuleId.NotFound"),
}


def ignore_missing(call: Callable[[], T], *codes: str) -> T | None:
    """`call()`, or None when AWS answers with one of `codes` (the resource is not there); any other error raises."""
    try:
        return call()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in codes:
            return None
        raise
