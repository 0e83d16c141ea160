"""Checks of the endpoint: the end-to-end probes' outcome."""

from __future__ import annotations

from vpclink_runbooks.checks.inventory import Inventory
from vpclink_runbooks.checks.registry import Result, check

# -- endpoint --

@check(id="endpoint.test_invoke", hop="endpoint", severity="error", repaired_by=None,
       remedy="read the test-invoke log and fix the hop it names")
@check(id="endpoint.custom_domain", hop="endpoint", severity="error", repaired_by=None,
       remedy="fix the hop the request was decided at, then `runbook request` again")
def end_to_end(inv: Inventory) -> list[Result]:
    """A request through the API (TestInvokeMethod) and through the custom domain, where the endpoint serves them."""
    out = []
    probe = inv.probes.get("test_invoke")
    if probe is None:
        out.append(Result("endpoint.test_invoke", "endpoint", "skip", "not probed (no API method to invoke yet, or "
                          "probes off)"))
    elif "unavailable" in probe:
        out.append(Result("endpoint.test_invoke", "endpoint", "skip",
                          f"TestInvokeMethod is not served by this endpoint ({probe['unavailable']})"))
    else:
        ok = probe.get("status") is not None and int(probe["status"]) < 500
        out.append(Result("endpoint.test_invoke", "endpoint", "pass" if ok else "fail",
                          f"TestInvokeMethod GET / -> {probe.get('status')} in {probe.get('ms')} ms",
                          "" if ok else f"read the test-invoke log: {probe.get('log', '')}"))
    request = inv.probes.get("domain_request")
    if request is None:
        out.append(Result("endpoint.custom_domain", "endpoint", "skip", "not probed"))
    elif "unavailable" in request:
        out.append(Result("endpoint.custom_domain", "endpoint", "skip", request["unavailable"]))
    else:
        # The chain works when the service answered: any status without API Gateway's x-amzn-ErrorType.
        ok = bool(request.get("service_answered"))
        by = f" by task {request['answered_by']}" if request.get("answered_by") else ""
        answer = request.get("status") or request.get("error")
        if ok:
            detail = f"GET {request['url']} -> {answer} answered by the service{by} in {request.get('ms')} ms"
        else:
            detail = (f"GET {request['url']} -> {answer} decided at hop {request.get('hop')}"
                      + (f" ({request['error_type']})" if request.get("error_type") else "")
                      + f" in {request.get('ms')} ms")
        out.append(Result("endpoint.custom_domain", "endpoint", "pass" if ok else "fail", detail,
                          "" if ok else _request_remedy(request)))
    return out


def _request_remedy(request: dict) -> str:
    hop, status = request.get("hop"), request.get("status")
    if hop and hop not in ("endpoint", "network", "service"):
        return f"fix hop {hop} (its check above says how), then `runbook request` again"
    if status == 403:
        return "403 from API Gateway: the base path mapping is missing or points elsewhere"
    if status is None:
        return "no HTTP answer: check DNS of the custom domain and the network path to it"
    return "API Gateway answered instead of the service: follow the failing hop above"

