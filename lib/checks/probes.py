"""Verify's end-to-end probes: TestInvokeMethod and a request through the custom domain."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from botocore.config import Config
from botocore.exceptions import ClientError

from vpclink_runbooks import request as request_mod
from vpclink_runbooks.aws.session import RETRY_CONFIG
from vpclink_runbooks.context import Context

if TYPE_CHECKING:
    from vpclink_runbooks.checks.inventory import Inventory


def _probe_client(ctx: Context):
    # A probe that fails says so at once; the full retry budget is for steps that must converge.
    return ctx.aws.session.client("apigateway", config=RETRY_CONFIG.merge(Config(retries={"mode": "standard",
                                                                                         "max_attempts": 2})))


PROBE_PATH = "runbook-probe"  # verify's request under the base path when the service has no health-check path


def _probes(ctx: Context, inv: Inventory) -> dict[str, dict]:
    """End-to-end requests; where the endpoint cannot serve them they are recorded as unavailable, not passed."""
    out: dict[str, dict] = {}
    resource = inv.probes.get("resource_id")
    if inv.api and resource:
        started = time.monotonic()
        try:
            result = _probe_client(ctx).test_invoke_method(restApiId=inv.api["id"], resourceId=resource["id"],
                                                           httpMethod="GET", pathWithQueryString="/",
                                                           stageVariables=(inv.stage or {}).get("variables", {}))
            out["test_invoke"] = {"status": result.get("status"), "ms": result.get("latency"),
                                  "log": (result.get("log") or "")[-300:]}
        except ClientError as exc:
            message = " ".join(str(exc.response["Error"].get("Message", "")).split())
            if "<html" in message.lower():  # an emulator's HTML error page says nothing useful
                message = "HTTP error page"
            out["test_invoke"] = {"unavailable": f"{exc.response['Error'].get('Code')}: {message[:120]}",
                                  "ms": round((time.monotonic() - started) * 1000)}
    domain, base_path = ctx.params.api.domain_name, ctx.params.api.base_path
    # A path the proxy resource serves: the API's root has no method, so API Gateway would answer it 403.
    path = (ctx.params.service.health_check_path or "").strip("/") or PROBE_PATH
    url = request_mod.url_for(domain, base_path, path)
    if (why := request_mod.resolvable(domain)) is not None:
        out["domain_request"] = {"unavailable": why, "url": url}
        return out
    out["domain_request"] = request_mod.send(domain, base_path, path, timeout=35)
    from vpclink_runbooks.context import record

    record("request", request_mod.record_of(out["domain_request"]))
    return out
