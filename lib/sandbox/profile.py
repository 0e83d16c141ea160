"""The sandbox's opt-in AWS-like profile: a fixed latency per call, AWS's transition times and API Gateway's
management quotas (token buckets per account and region, answering 429 TooManyRequestsException), all but the
latency scaled by one factor.

Scale: `scale=1` is AWS's own timing; `scale=0.1` makes every transition delay 1/10 as long and every quota
period 1/10 as long (so rates are 10x and bucket sizes stay as documented): CreateRestApi allows 1 call per
0.3 s instead of 1 per 3 s. The per-call latency (80 ms) is not scaled: it is the round trip to a region.

Configured by `server.start_sandbox(profile=Profile(...))`, by `runbook sandbox --aws-like [--scale F]`, or
for any sandbox a process starts by the environment: RUNBOOK_SANDBOX_PROFILE=aws-like, RUNBOOK_SANDBOX_SCALE=F.
The default profile (none) adds nothing: the sandbox stays fast.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from vpclink_runbooks.aws.quotas import QUOTAS, TOTAL, Quota  # noqa: F401 - Quota: part of the profile's API

from . import faults

PROFILE_ENV = "RUNBOOK_SANDBOX_PROFILE"
SCALE_ENV = "RUNBOOK_SANDBOX_SCALE"

# AWS's typical times at scale 1 (seconds). A VPC link: CreateVpcLink "typically takes 2-4 minutes to complete and
# become operational" (API reference) -> 200 s PENDING. An NLB: provisioning time is not published; 150 s, the
# figure users report. A target: "it can take a few minutes for the registration process to complete and health
# checks to start", then one passing check (ELB and ECS guides) -> 100 s from the later of its registration and
# the NLB becoming active. A task: 30 s from PENDING to RUNNING (image pull on a warm instance, secrets).
AWS_DELAYS = {"nlb_provisioning": 150.0, "vpc_link_pending": 200.0, "task_start": 30.0, "target_healthy": 100.0}


@dataclass
class Profile:
    """What the sandbox adds to look like AWS; `scale` multiplies the delays and the quota periods."""

    scale: float = 1.0
    latency: float = 0.080
    quotas: dict[tuple[str, str], Quota] = field(default_factory=lambda: dict(QUOTAS))
    total: Quota = TOTAL

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"scale must be above 0, not {self.scale}")

    def delays(self) -> Any:
        from .server import Delays

        return Delays(**{name: seconds * self.scale for name, seconds in AWS_DELAYS.items()})


def from_env(environ: dict[str, str] | None = None) -> Profile | None:
    """The profile RUNBOOK_SANDBOX_PROFILE / RUNBOOK_SANDBOX_SCALE ask for; None for the default (fast)."""
    environ = os.environ if environ is None else environ
    name = environ.get(PROFILE_ENV, "").strip().lower()
    if name in ("", "fast", "default"):
        return None
    if name != "aws-like":
        raise ValueError(f"{PROFILE_ENV}={name!r}: use 'aws-like' (or leave it unset for the fast default)")
    return Profile(scale=float(environ.get(SCALE_ENV) or 1.0))


class TokenBucket:
    """Starts full; `wait(now)` is 0 when a token is there (then `spend()` it), else the seconds until one is."""

    def __init__(self, quota: Quota, now: float):
        self.capacity = float(quota.burst or quota.calls)
        self.rate = quota.calls / quota.seconds
        self.tokens = self.capacity
        self.stamp = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait(self, now: float) -> float:
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def spend(self) -> None:
        self.tokens -= 1


# ---- the operation a request calls, from botocore's service models (method + requestUri pattern) ---------

_ROUTES: dict[str, list[tuple[str, re.Pattern, str, str]]] = {}
_ROUTES_LOCK = threading.Lock()


def _routes(service: str) -> list[tuple[str, re.Pattern, str, str]]:
    with _ROUTES_LOCK:
        if service not in _ROUTES:
            import botocore.session

            model = botocore.session.get_session().get_service_model(service)
            rows = []
            for name in model.operation_names:
                http = model.operation_model(name).http
                path, _, query = http["requestUri"].partition("?")
                pattern = re.sub(r"\\\{[^}]+\\\+\\\}", ".+", re.escape(path))
                pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", pattern)
                rows.append((http["method"], re.compile(pattern + "/?"), query, name))
            # a required query string (ImportRestApi: ?mode=import) first, then the most literal path
            rows.sort(key=lambda r: (not r[2], -len(re.sub(r"\[\^/\]\+|\.\+", "", r[1].pattern))))
            _ROUTES[service] = rows
        return _ROUTES[service]


def operation_of(method: str, path: str, query: str = "") -> tuple[str, str] | None:
    """(service, operation) of an API Gateway management request; V2 (apigatewayv2) paths start with /v2/."""
    service = "apigatewayv2" if path.startswith("/v2/") else "apigateway"
    for verb, pattern, required, name in _routes(service):
        if verb == method and pattern.fullmatch(path) and (not required or required in query.split("&")):
            return service, name
    return None


# ---- the quota check (one per sandbox process: moto's state is process wide) ----------------------------

_SCOPE = re.compile(r"Credential=([^/]+)/[^/]+/([^/]+)/([^/]+)/aws4_request")


class Throttle:
    """Token buckets per (account, region, quota), shared by every caller of this sandbox."""

    def __init__(self, profile: Profile, clock: Any = time.monotonic):
        self.profile = profile
        self._clock = clock  # a simulated one in tests of the retry budget
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}
        self._lock = threading.Lock()
        self.throttled: dict[str, int] = {}

    def _bucket(self, account: str, region: str, key: str, quota: Quota) -> TokenBucket:
        bucket = self._buckets.get((account, region, key))
        if bucket is None:
            bucket = self._buckets[(account, region, key)] = TokenBucket(quota.scaled(self.profile.scale),
                                                                         self._clock())
        return bucket

    def check(self, account: str, region: str, service: str, operation: str | None) -> float:
        """0 when the call may go ahead (its tokens spent), else seconds until it could."""
        with self._lock:
            buckets = [self._bucket(account, region, "total", self.profile.total)]
            quota = self.profile.quotas.get((service, operation or ""))
            if quota is not None:
                buckets.append(self._bucket(account, region, f"{service}.{operation}", quota))
            now = self._clock()
            wait = max(b.wait(now) for b in buckets)
            if wait > 0:
                name = operation or "?"
                self.throttled[name] = self.throttled.get(name, 0) + 1
                return wait
            for b in buckets:
                b.spend()
            return 0.0


def _account_of(access_key: str) -> str:
    try:
        from moto.iam.models import get_account_id_from

        return get_account_id_from(access_key)
    except ImportError:
        return os.environ.get("MOTO_ACCOUNT_ID", "123456789012")


def _too_many_requests(service: str, wait: float) -> tuple[int, dict[str, str], bytes]:
    # API Gateway's REST-JSON error: the type in x-amzn-ErrorType, {"message": ...} in the body. V1's model maps
    # TooManyRequestsException.retryAfterSeconds to the Retry-After header (whole seconds); V2's has no header.
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": "TooManyRequestsException",
               "x-amzn-RequestId": str(uuid.uuid4())}
    if service == "apigateway":
        headers["Retry-After"] = str(max(1, math.ceil(wait)))
    return 429, headers, json.dumps({"message": "Too Many Requests"}).encode()


def make_hook(profile: Profile, throttle: Throttle) -> Any:
    """The request hook faults.wsgi_middleware runs before serving: the latency, then API Gateway's quotas."""

    def hook(environ: dict[str, Any]) -> tuple[int, dict[str, str], bytes] | None:
        scope = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
        if scope is None:  # not an AWS call (moto-api, the sandbox's own routes)
            return None
        if profile.latency > 0:
            time.sleep(profile.latency)
        access_key, region, signing_name = scope.groups()
        if signing_name != "apigateway":  # V1 and V2 are both signed as apigateway
            return None
        found = operation_of(environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""),
                             environ.get("QUERY_STRING", ""))
        service, operation = found or (
            "apigatewayv2" if environ.get("PATH_INFO", "").startswith("/v2/") else "apigateway", None)
        wait = throttle.check(_account_of(access_key), region, service, operation)
        return _too_many_requests(service, wait) if wait > 0 else None

    return hook


_STATE: dict[str, Any] = {}


def install(profile: Profile | None) -> Throttle | None:
    """Make `profile` this process's sandbox profile (None: the fast default); fresh buckets either way."""
    faults.set_request_hook(None)
    _STATE.clear()
    if profile is None:
        return None
    throttle = Throttle(profile)
    _STATE.update(profile=profile, throttle=throttle)
    faults.set_request_hook(make_hook(profile, throttle))
    return throttle


def current() -> tuple[Profile | None, Throttle | None]:
    """The installed profile and its throttle (for tests and the sandbox's banner)."""
    return _STATE.get("profile"), _STATE.get("throttle")
