"""Pacing: API Gateway's management quotas, spent in turn by the runbook's processes of one account and region.

AWS answers a management call over its quota with 429 TooManyRequestsException (aws/quotas.py: CreateRestApi 1
per 3 s, DeleteRestApi 1 per 30 s, all calls 10 per s ...), and every process of the account spends the same
budget. boto3's retries recover, but each throttled attempt is a lost round trip and a backoff of seconds; ten
environments applying at once would be throttled on most of those calls. So before each attempt (botocore's
``before-send``, retries included) of an API Gateway call a client waits for its turn.

The turn is kept by GCRA (the generic cell rate algorithm: a token bucket with one number of state, the
"theoretical arrival time"): one small file per (account, region, quota) in a directory every process of the
batch shares, read and advanced under ``flock``. A caller reserves the next slot and sleeps until it, so callers
are served in the order they asked, the bucket's burst is allowed at first and the steady rate after. A slot is
10% and 25 ms longer than the quota's interval, so the jitter of a request's way to AWS does not land a call just
inside the previous one's window. Another tool of the account spends the same quota unseen: its calls can still throttle
ours, and boto3's retries (session.APIGATEWAY_RETRY_CONFIG) still recover.

Environment:
  RUNBOOK_PACE_DIR     the shared directory (default <tmp>/vpclink-runbooks-<uid>/pace: every runbook process of
                       this user on this host, so the processes of `runbook apply|destroy ENV... --parallel N`)
  RUNBOOK_QUOTA_SCALE  quota periods x F (default 1, AWS's documented quotas; below 1 for faster quotas)
  RUNBOOK_PACE=off     do not pace (boto3's retries alone)
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from vpclink_runbooks.aws.quotas import QUOTAS, TOTAL, Quota

PACE_DIR_ENV = "RUNBOOK_PACE_DIR"
SCALE_ENV = "RUNBOOK_QUOTA_SCALE"
PACE_ENV = "RUNBOOK_PACE"
MARGIN, JITTER = 1.10, 0.025  # a slot is 10% and 25 ms longer than the quota's interval


def pace_dir() -> Path:
    configured = os.environ.get(PACE_DIR_ENV)
    return Path(configured) if configured else Path(tempfile.gettempdir(), f"vpclink-runbooks-{os.getuid()}", "pace")


def scale() -> float:
    raw = os.environ.get(SCALE_ENV) or "1"
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        from vpclink_runbooks.errors import ParamsError

        raise ParamsError([(SCALE_ENV, f"{raw!r} is not a positive number; unset it for AWS's documented quotas")])
    return value


def enabled() -> bool:
    return os.environ.get(PACE_ENV, "").strip().lower() not in ("off", "0", "false", "no")


def reserve(path: Path, quota: Quota, now: float | None = None) -> float:
    """Take the next slot of `quota` (state in `path`, shared under flock); the seconds to wait until it is due."""
    interval = quota.seconds / quota.calls * MARGIN + JITTER
    tolerance = (float(quota.burst or quota.calls) - 1) * interval
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            fh.seek(0)
            try:
                tat = float(fh.read().strip() or 0)
            except ValueError:
                tat = 0.0
            now = time.time() if now is None else now
            tat = max(tat, now)
            fh.seek(0)
            fh.truncate()
            fh.write(repr(tat + interval))
            fh.flush()
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    wait = tat - tolerance - now
    return wait if wait > 1e-6 else 0.0  # float error of the summed slots is no wait


def _key(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


class Pacer:
    """before-send handler of one API Gateway client: waits for the operation's quota and the total one."""

    def __init__(self, service: str, account: str, region: str, endpoint: str = "", directory: Path | None = None,
                 factor: float | None = None, sleep: Any = time.sleep):
        self.service, self.directory = service, directory or pace_dir()
        # the endpoint's host too: two emulators (or an emulator and AWS) are two budgets; V1 and V2 share one
        self.prefix = _key(f"{account}-{region}-{urlparse(endpoint).netloc}")
        self.factor = scale() if factor is None else factor
        self.sleep = sleep
        self.waited = 0.0  # seconds this client spent waiting for its turn

    def quotas(self, operation: str) -> list[tuple[str, Quota]]:
        found = [(f"{self.service}-{operation}", QUOTAS[(self.service, operation)])] \
            if (self.service, operation) in QUOTAS else []
        return [(name, quota.scaled(self.factor)) for name, quota in [*found, ("total", TOTAL)]]

    def before_send(self, event_name: str = "", **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        wait = max(reserve(self.directory / f"{self.prefix}-{name}", quota) for name, quota in self.quotas(operation))
        if wait > 0:
            self.waited += wait
            self.sleep(wait)
        return None  # a value here would replace the HTTP response


def install(client: Any, account: str | None) -> Pacer | None:
    """Pace an API Gateway client (unless RUNBOOK_PACE=off); its calls wait for their turn before each attempt."""
    if not enabled():
        return None
    pacer = Pacer(client.meta.service_model.service_name, account or "any-account", client.meta.region_name,
                  client.meta.endpoint_url or "")
    client.meta.events.register(f"before-send.{client.meta.service_model.service_id.hyphenize()}",
                                pacer.before_send)
    return pacer
