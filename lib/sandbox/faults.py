"""Fault injection for the embedded sandbox (tests and demos only).

`throttle(fraction)` and `server_error(fraction)` make that fraction of signed AWS requests to the
sandbox fail the way AWS does, in the right protocol shape for the service, so boto3's retry
logic (standard / adaptive mode) retries them transparently. `set_vpc_link_status` forces a VPC
link into a state such as FAILED.

    with throttle(0.5, seed=1) as t:
        ...                      # boto3 calls; t.injected counts the throttles returned
"""

from __future__ import annotations

import json
import random
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from .behaviours import set_vpc_link_status

__all__ = ["set_vpc_link_status", "throttle", "server_error", "FaultSwitch", "wsgi_middleware"]

_ACTIVE: list[FaultSwitch] = []
_ACTIVE_LOCK = threading.Lock()
# The sandbox profile's hook (profile.py: latency, API Gateway's quotas): called with each request's environ
# before faults and moto; answers (status, headers, body) to refuse the request, or None to let it through.
_REQUEST_HOOK: list[Callable[[dict[str, Any]], tuple[int, dict[str, str], bytes] | None]] = []


def set_request_hook(hook: Callable[[dict[str, Any]], tuple[int, dict[str, str], bytes] | None] | None) -> None:
    _REQUEST_HOOK[:] = [hook] if hook is not None else []


def _refuse(environ: dict[str, Any], start_response: Callable, status: int, headers: dict[str, str],
            body: bytes) -> list[bytes]:
    try:  # drain the request body so keep-alive connections stay in sync
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            environ["wsgi.input"].read(length)
    except (ValueError, OSError):
        pass
    headers = {**headers, "Content-Length": str(len(body))}
    reason = {400: "Bad Request", 429: "Too Many Requests", 503: "Service Unavailable"}.get(status, "Error")
    start_response(f"{status} {reason}", list(headers.items()))
    return [body]


_TEST_INVOKE = re.compile(r"POST /restapis/[^/]+/resources/[^/]+/methods/[^/]+/?$")
_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/([^/]+)/([^/]+)/aws4_request")


class FaultSwitch:
    """An active fault; a context manager (`with`) or switched off with `off()`."""

    def __init__(self, kind: str, fraction: float, services: Iterable[str] | None, seed: int | None):
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be between 0 and 1")
        self.kind = kind
        self.fraction = fraction
        self.services = {s.lower() for s in services} if services else None
        self._rng = random.Random(seed)
        self.injected = 0
        self.by_service: Counter[str] = Counter()
        with _ACTIVE_LOCK:
            _ACTIVE.append(self)

    def __enter__(self) -> FaultSwitch:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.off()

    def off(self) -> None:
        with _ACTIVE_LOCK:
            if self in _ACTIVE:
                _ACTIVE.remove(self)

    def _fires(self, service: str) -> bool:
        if self.services is not None and service not in self.services:
            return False
        with _ACTIVE_LOCK:
            if self._rng.random() >= self.fraction:
                return False
            self.injected += 1
            self.by_service[service] += 1
            return True


def throttle(fraction: float, services: Iterable[str] | None = None, seed: int | None = None) -> FaultSwitch:
    """Make `fraction` of requests (optionally only to these signing names, e.g. {"ecs", "elasticloadbalancing"})
    fail with the service's throttling error. Active until `.off()` or the end of the `with` block."""
    return FaultSwitch("throttle", fraction, services, seed)


def server_error(fraction: float, services: Iterable[str] | None = None, seed: int | None = None) -> FaultSwitch:
    """Make `fraction` of requests fail with HTTP 503 (ServiceUnavailable)."""
    return FaultSwitch("server_error", fraction, services, seed)


def _error_response(kind: str, service: str, environ: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    rid = str(uuid.uuid4())
    is_json = bool(environ.get("HTTP_X_AMZ_TARGET")) or "json" in environ.get("CONTENT_TYPE", "")
    if kind == "throttle":
        if service == "ec2":
            # EC2 answers RequestLimitExceeded with HTTP 503 in its own XML shape.
            body = (
                "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded."
                f"</Message></Error></Errors><RequestID>{rid}</RequestID></Response>"
            )
            return 503, {"Content-Type": "text/xml"}, body.encode()
        if service == "apigateway":
            # REST-JSON API Gateway throttles with 429 TooManyRequestsException.
            return (
                429,
                {"Content-Type": "application/json", "x-amzn-ErrorType": "TooManyRequestsException"},
                json.dumps({"message": "Too Many Requests"}).encode(),
            )
        if is_json:
            return (
                400,
                {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": "ThrottlingException"},
                json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode(),
            )
        code, message = "Throttling", "Rate exceeded"
        status = 400
    else:
        if service == "ec2":
            body = (
                "<Response><Errors><Error><Code>Unavailable</Code><Message>The server is overloaded."
                f"</Message></Error></Errors><RequestID>{rid}</RequestID></Response>"
            )
            return 503, {"Content-Type": "text/xml"}, body.encode()
        if is_json or service == "apigateway":
            return (
                503,
                {"Content-Type": "application/json", "x-amzn-ErrorType": "ServiceUnavailableException"},
                json.dumps({"__type": "ServiceUnavailableException", "message": "Service Unavailable"}).encode(),
            )
        code, message = "ServiceUnavailable", "Service Unavailable"
        status = 503
    body = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
        f"<RequestId>{rid}</RequestId></ErrorResponse>"
    )
    return status, {"Content-Type": "text/xml"}, body.encode()


def wsgi_middleware(app: Callable, lock: Any | None = None) -> Callable:
    """Wrap the moto WSGI app: inject active faults, then serve the request (under `lock` if given)."""

    def wrapped(environ: dict[str, Any], start_response: Callable) -> Any:
        if environ.get("PATH_INFO") == "/_sandbox/front" and environ.get("REQUEST_METHOD") == "GET":
            # How a client that only has AWS_ENDPOINT_URL finds the data plane's front (sandbox only).
            from .front import current_url

            body = json.dumps({"front": current_url()}).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if _REQUEST_HOOK and (answer := _REQUEST_HOOK[0](environ)) is not None:
            return _refuse(environ, start_response, *answer)
        if _ACTIVE and not environ.get("PATH_INFO", "").startswith("/moto-api"):
            m = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
            if m:
                service = m.group(2).lower()
                for switch in list(_ACTIVE):
                    if switch._fires(service):
                        status, headers, body = _error_response(switch.kind, service, environ)
                        # drain the request body so keep-alive connections stay in sync
                        try:
                            length = int(environ.get("CONTENT_LENGTH") or 0)
                            if length:
                                environ["wsgi.input"].read(length)
                        except (ValueError, OSError):
                            pass
                        headers["Content-Length"] = str(len(body))
                        headers["x-amzn-RequestId"] = str(uuid.uuid4())
                        reason = {400: "Bad Request", 429: "Too Many Requests", 503: "Service Unavailable"}
                        start_response(f"{status} {reason[status]}", list(headers.items()))
                        return [body]
        if lock is None or _TEST_INVOKE.match(f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO', '')}"):
            # TestInvokeMethod takes the lock itself and waits for the stand-in outside it (a slow or dropped
            # integration must not stall the whole control plane).
            return app(environ, start_response)
        with lock:
            return list(app(environ, start_response))

    return wrapped
