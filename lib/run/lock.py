"""One writer per environment: a lock held in SSM Parameter Store, so operators on two machines exclude each other.

The lock is the parameter `/vpclink-runbooks/<environment>/lock`. Taking it is `PutParameter` with
`Overwrite=False`, which AWS performs atomically: exactly one caller creates the parameter and every other
gets `ParameterAlreadyExists`. Its value says who holds it (caller ARN, host, pid, run id, command, since).
Releasing deletes it only while the value is still ours. A holder that died leaves the lock behind: on the
same host with its process gone it is taken over automatically; anywhere else a human breaks it with
`runbook unlock ENV --force` after checking that the holder is really gone.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from vpclink_runbooks.errors import GuardRefused
from vpclink_runbooks.names import Names
from vpclink_runbooks.params import Params

PERMISSIONS = ["ssm:PutParameter", "ssm:GetParameter", "ssm:DeleteParameter", "ssm:AddTagsToResource"]


class LockHeld(GuardRefused):
    """Another run holds the environment's lock; nothing was changed."""


def parameter_name(environment: str) -> str:
    return f"/vpclink-runbooks/{environment}/lock"


def describe(holder: dict) -> str:
    """Who holds a lock and since when, in one line."""
    if "raw" in holder:
        return f"an unreadable lock value {holder['raw']!r}"
    return (f"{holder.get('command', '?')} run {holder.get('run_id', '?')} by {holder.get('holder', '?')} on host "
            f"{holder.get('host', '?')} (pid {holder.get('pid', '?')}) since {holder.get('since', '?')}")


def read(ssm: Any, environment: str) -> dict | None:
    """The current holder, or None when nobody holds the lock."""
    try:
        value = ssm.get_parameter(Name=parameter_name(environment))["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ParameterNotFound":
            raise
        return None
    try:
        holder = json.loads(value)
    except ValueError:
        return {"raw": value}
    return holder if isinstance(holder, dict) else {"raw": value}


def _delete(ssm: Any, environment: str) -> bool:
    try:
        ssm.delete_parameter(Name=parameter_name(environment))
        return True
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ParameterNotFound":
            raise
        return False


def holder_gone(holder: dict) -> bool:
    """True when the holder ran on this host and its process is gone: the lock is certainly stale."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


@dataclass
class Lock:
    """A held lock; `release()` gives it back if it is still ours."""

    ssm: Any
    environment: str
    holder: dict
    took_over: dict | None = None

    @property
    def name(self) -> str:
        return parameter_name(self.environment)

    def release(self) -> bool:
        current = read(self.ssm, self.environment)
        if current is None or current.get("run_id") != self.holder["run_id"]:
            return False  # broken (and maybe taken) by someone else meanwhile: not ours to delete
        return _delete(self.ssm, self.environment)


def acquire(ssm: Any, params: Params, *, caller_arn: str, run_id: str, command: str, env_arg: str) -> Lock:
    """Take the environment's lock or raise LockHeld naming who holds it and how to break it."""
    holder = {"holder": caller_arn, "host": socket.gethostname(), "pid": os.getpid(), "run_id": run_id,
              "command": command, "since": datetime.now(UTC).isoformat(timespec="seconds")}
    took_over = None
    # Three tries cover: taken at once; held by a dead process on this host (taken over); released meanwhile.
    for _ in range(3):
        try:
            ssm.put_parameter(Name=parameter_name(params.environment), Value=json.dumps(holder), Type="String",
                              Overwrite=False, Tags=Names(params).tag_list(),
                              Description=f"vpclink-runbooks: the run that may change {params.environment}")
            return Lock(ssm, params.environment, holder, took_over)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ParameterAlreadyExists":
                raise
        current = read(ssm, params.environment)
        if current is None:
            continue
        if took_over is None and holder_gone(current):
            # Re-read right before deleting, so a lock another run took a moment ago is not removed.
            if read(ssm, params.environment) == current:
                _delete(ssm, params.environment)
            took_over = current
            continue
        break
    current = read(ssm, params.environment) or {"raw": "(released while we looked)"}
    raise LockHeld(
        f"{params.environment} is locked by {describe(current)}. Only one run may change an environment at a "
        f"time: wait for it to finish and run again. If that run is dead (killed, or its machine is gone), break "
        f"the lock deliberately with `runbook unlock {env_arg} --force`. Nothing was changed."
    )


def break_lock(ssm: Any, environment: str) -> dict | None:
    """Remove the lock whoever holds it; returns the holder it removed (None if there was none)."""
    current = read(ssm, environment)
    if current is None:
        return None
    return current if _delete(ssm, environment) else None
