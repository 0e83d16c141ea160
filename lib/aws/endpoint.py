"""Where AWS is: boto3's standard configuration (AWS_ENDPOINT_URL and credentials), or, for params that say
`sandbox: true`, the local endpoint a running `runbook sandbox` announced in its state file."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

from vpclink_runbooks.errors import RunbookError

SANDBOX_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def state_file() -> Path:
    """Where a foreground `runbook sandbox` announces itself, so later commands share it."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vpclink-runbooks" / "sandbox.json"
    return Path(os.environ.get("RUNBOOK_SANDBOX_FILE", default))


def _alive(state: dict) -> bool:
    try:
        os.kill(int(state["pid"]), 0)
        with urllib.request.urlopen(state["endpoint"] + "/moto-api/", timeout=2):
            return True
    except (OSError, KeyError, ValueError):
        return False


def running_sandbox() -> dict | None:
    path = state_file()
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    return state if _alive(state) else None


def export(env: dict[str, str]) -> None:
    os.environ.update(env)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(key, None)


def use_running_sandbox() -> str:
    """In a kernel: use AWS_ENDPOINT_URL if set, else the announced sandbox; never start one."""
    if os.environ.get("AWS_ENDPOINT_URL"):
        return os.environ["AWS_ENDPOINT_URL"]
    state = running_sandbox()
    if state is None:
        raise RunbookError(
            "params say sandbox: true but no sandbox is running and AWS_ENDPOINT_URL is not set: "
            "start one with `runbook sandbox` (or `make lab`) and run again"
        )
    export(state["env"])
    return state["endpoint"]
