"""Waits with boto3 waiters, shown as a tqdm progress line whose final state stays readable."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from botocore.exceptions import WaiterError
from botocore.waiter import WaiterModel, create_waiter_with_client
from tqdm import tqdm

from vpclink_runbooks.aws.session import polling, read_only_reason
from vpclink_runbooks.errors import WaitTimedOut

POLL_SECONDS = 1
# API Gateway has no VPC link waiters; these use botocore's own waiter machinery.
_APIGATEWAY_WAITERS = WaiterModel({
    "version": 2,
    "waiters": {
        "VpcLinkAvailable": {
            "operation": "GetVpcLink", "delay": 2, "maxAttempts": 300,
            "acceptors": [
                {"matcher": "path", "argument": "status", "expected": "AVAILABLE", "state": "success"},
                {"matcher": "path", "argument": "status", "expected": "FAILED", "state": "failure"},
            ],
        },
        "VpcLinkDeleted": {
            "operation": "GetVpcLink", "delay": 2, "maxAttempts": 300,
            "acceptors": [
                {"matcher": "error", "expected": "NotFoundException", "state": "success"},
                {"matcher": "path", "argument": "status", "expected": "DELETING", "state": "retry"},
            ],
        },
    },
})

# apigatewayv2 (VPC link V2) has no waiters either; FAILED and INACTIVE links never become AVAILABLE.
_APIGATEWAYV2_WAITERS = WaiterModel({
    "version": 2,
    "waiters": {
        "VpcLinkV2Available": {
            "operation": "GetVpcLink", "delay": 2, "maxAttempts": 300,
            "acceptors": [
                {"matcher": "path", "argument": "VpcLinkStatus", "expected": "AVAILABLE", "state": "success"},
                {"matcher": "path", "argument": "VpcLinkStatus", "expected": "FAILED", "state": "failure"},
                {"matcher": "path", "argument": "VpcLinkStatus", "expected": "INACTIVE", "state": "failure"},
            ],
        },
        "VpcLinkV2Deleted": {
            "operation": "GetVpcLink", "delay": 2, "maxAttempts": 300,
            "acceptors": [
                {"matcher": "error", "expected": "NotFoundException", "state": "success"},
                {"matcher": "path", "argument": "VpcLinkStatus", "expected": "DELETING", "state": "retry"},
            ],
        },
    },
})


class _Display:
    """Where a progress line goes: a live-updated display in a kernel, stderr elsewhere."""

    def __init__(self) -> None:
        self.handle = None
        try:
            from IPython import get_ipython

            if get_ipython() is not None and hasattr(get_ipython(), "kernel"):
                from IPython.display import display

                self.handle = display({"text/plain": ""}, raw=True, display_id=True)
        except ImportError:
            pass
        self.last = ""

    def write(self, text: str) -> None:
        line = text.strip("\r\n ")
        if not line:
            return
        self.last = line
        if self.handle is not None:
            self.handle.update({"text/plain": line}, raw=True)

    def flush(self) -> None:
        pass

    def finish(self, line: str) -> None:
        if self.handle is not None:
            # The live bar is replaced by its final, readable state; the step returns the outcome as
            # the cell's result, which is what papermill --log-output prints.
            self.write(line)
        else:
            print(line, file=sys.stderr, flush=True)


def _waiter(client: Any, name: str) -> Any:
    if name in _APIGATEWAY_WAITERS.waiter_names:
        return create_waiter_with_client(name, _APIGATEWAY_WAITERS, client)
    if name in _APIGATEWAYV2_WAITERS.waiter_names:
        return create_waiter_with_client(name, _APIGATEWAYV2_WAITERS, client)
    return client.get_waiter(name)


def would_wait(client: Any, waiter_name: str, what: str, timeout: float = 900) -> str | None:
    """What a wait would wait for, when `client`'s session is read-only (plan mode: it changed nothing, so there
    is nothing to wait for); None when the wait should poll."""
    why = read_only_reason(client)
    if why is None:
        return None
    return f"{what}: not waited ({why}); apply would wait up to {timeout:.0f}s ({waiter_name})"


def waited(client: Any, waiter_name: str, what: str, done: str, **kwargs: Any) -> str:
    """A step's wait in one line: on a read-only client what apply would wait for (would_wait, no poll), else
    wait (kwargs are the waiter's) and say `done` after the seconds it took."""
    planned = would_wait(client, waiter_name, what, kwargs.get("timeout", 900))
    if planned is not None:
        return planned
    return f"{done} after {wait(client, waiter_name, what, **kwargs):.1f}s"


def wait(client: Any, waiter_name: str, what: str, *, timeout: float = 900, **kwargs: Any) -> float:
    """Wait with a boto3 waiter until `what` is reached; returns the seconds it took.

    On a read-only client (plan mode) it returns 0 at once, without a single poll, and shows what it would
    wait for (would_wait)."""
    planned = would_wait(client, waiter_name, what, timeout)
    if planned is not None:
        _Display().finish(planned)
        return 0.0
    waiter = _waiter(client, waiter_name)
    config = {"Delay": POLL_SECONDS, "MaxAttempts": max(1, int(timeout / POLL_SECONDS))}
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            with polling(waiter_name):
                waiter.wait(WaiterConfig=config, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread below
            outcome["error"] = exc

    display = _Display()
    started = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    bar = tqdm(total=1, desc=f"waiting for {what}", file=display, leave=True, mininterval=0.2,
               bar_format="{desc}: {percentage:3.0f}%|{bar:20}| {elapsed} {postfix}", dynamic_ncols=False)
    while worker.is_alive():
        worker.join(0.25)
        bar.set_postfix_str("polling", refresh=False)
        bar.refresh()
    seconds = time.monotonic() - started
    error = outcome.get("error")
    if error is None:
        bar.update(1)
        bar.set_postfix_str("done")
        bar.close()
        display.finish(f"{what}: 100%|{'█' * 20}| done after {seconds:.1f}s")
        return seconds
    bar.set_postfix_str("FAILED")
    bar.close()
    detail = str(error)
    display.finish(f"{what}: FAILED after {seconds:.1f}s: {detail}")
    if isinstance(error, WaiterError):
        raise WaitTimedOut(f"waiting for {what} ({waiter_name}) failed after {seconds:.0f}s: {detail}") from error
    raise error
