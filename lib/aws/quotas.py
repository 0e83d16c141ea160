"""API Gateway's management quotas as AWS documents them: per account and region, fixed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Quota:
    """`calls` requests every `seconds` per account and region: a token bucket of `calls` tokens refilled at
    calls/seconds a second (the fixed quotas refill steadily; the total one has its own burst)."""

    calls: float
    seconds: float
    burst: float | None = None

    def scaled(self, scale: float) -> Quota:
        return Quota(self.calls, self.seconds * scale, self.burst)


# "Amazon API Gateway quotas" (docs.aws.amazon.com/apigateway/latest/developerguide/limits.html), table
# "API Gateway quotas for creating, deploying and managing an API": fixed, per account, cannot be increased.
# CreateRestApi: the figure for Regional or private APIs (the runbook creates Regional ones).
QUOTAS: dict[tuple[str, str], Quota] = {
    ("apigateway", "CreateRestApi"): Quota(1, 3),
    ("apigateway", "CreateDeployment"): Quota(1, 5),
    ("apigateway", "DeleteRestApi"): Quota(1, 30),
    ("apigateway", "GetResources"): Quota(5, 2),
    ("apigateway", "CreateResource"): Quota(5, 1),
    ("apigateway", "DeleteResource"): Quota(5, 1),
    ("apigatewayv2", "CreateVpcLink"): Quota(1, 15),
    ("apigatewayv2", "DeleteVpcLink"): Quota(1, 30),
}
# Same table, "Total operations": 10 requests per second with a burst of 40, across every management call.
TOTAL = Quota(10, 1, burst=40)
