"""Independent reads side by side: a small thread pool that keeps each caller's context and raises as a loop would.

Every AWS call is a round trip (~80 ms to a region); reads that do not need each other's answers (the world's VPC,
subnets, instances, load balancers, APIs ...) need not wait for each other. boto3's clients are thread-safe (and
`session.Aws` creates each client under a lock); what a caller set in a context variable (a waiter's `polling`)
holds in its workers because each call runs in a copy of the caller's context; the run inventory's `fresh`
window is the inventory's own state, which every thread reads.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

# At most this many calls of one gather run at once: botocore keeps 10 connections per client, and a gather
# nested in a gather's call (the targets' health within verify's fetch) adds its own few.
MAX_WORKERS = 8


def gather(*calls: Callable[[], Any], workers: int = MAX_WORKERS) -> list[Any]:
    """Run `calls` side by side (at most `workers` at once) and return their results in order.

    Every call runs to its end before gather returns or raises, so none is left reading after its caller moved
    on; then, if any raised, the exception of the first that did (in the order given) is raised unchanged, as
    the same calls made one after another would have raised (when they do not depend on each other)."""
    if len(calls) <= 1:
        return [call() for call in calls]
    with ThreadPoolExecutor(max_workers=min(workers, len(calls)), thread_name_prefix="runbook-read") as pool:
        futures = [pool.submit(contextvars.copy_context().run, call) for call in calls]
        wait(futures)
    return [future.result() for future in futures]
