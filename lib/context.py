"""The context of one step: validated params, the AWS clients, names, mode, and who is calling."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from vpclink_runbooks.aws import session as aws_mod
from vpclink_runbooks.errors import ParamsError
from vpclink_runbooks.names import Names
from vpclink_runbooks.params import Params, load_raw, parse_params
from vpclink_runbooks.run import lab

# "repair-plan" and "repair" are modes of the verify notebook: plan the repair, or make it.
MODES = ("plan", "apply", "repair-plan", "repair")
# The modes that may change AWS; in every other mode the session refuses mutating calls and waits return at once.
CHANGING_MODES = ("apply", "repair")
# The top-level keys a notebook's parameters cell declares; papermill -f injects them.
PARAM_KEYS = ("environment", "sandbox", "protected", "region", "account_id", "aws_profile", "role_arn",
              "vpc_id", "cluster", "service", "nlb", "load_balancer", "vpc_link", "api")


@dataclass
class Context:
    params: Params
    aws: aws_mod.Aws
    names: Names
    mode: str
    identity: dict
    # Calls a converge started in the background, joined by a later wait of the same notebook (e.g. destroy's
    # paced DeleteRestApi): name -> [(what, concurrent.futures.Future)].
    pending: dict[str, list] = field(default_factory=dict)

    @property
    def apply(self) -> bool:
        """True when this step may change AWS ("repair-plan" only plans)."""
        return self.mode in CHANGING_MODES

    def header(self) -> pd.DataFrame:
        """Who runs what, where: the first table of every executed notebook."""
        p = self.params
        rows = {
            "environment": p.environment, "mode": self.mode, "account": self.identity["account"],
            "caller": self.identity["caller_arn"], "region": self.identity["region"],
            "endpoint": self.aws.endpoint or "AWS (standard endpoints)", "params sha256": p.sha256()[:16],
        }
        import socket

        from vpclink_runbooks.run.audit import local_user

        rows["sandbox"] = p.sandbox  # the embedded emulator (at the endpoint above), or not
        rows["local user"] = f"{local_user()}@{socket.gethostname()}"
        return pd.DataFrame({"": list(rows), "value": list(rows.values())})


def merge_params(params_file: str | None, injected: dict[str, Any]) -> dict:
    """The params file, overridden by any key papermill injected (keys left at None are not injected)."""
    data = dict(load_raw(params_file)) if params_file else {}
    for key in PARAM_KEYS:
        if injected.get(key) is not None:
            data[key] = injected[key]
    return data


def begin(notebook: str, namespace: dict[str, Any]) -> Context:
    """Validate a notebook's parameters, connect, and guard the account, before any change."""
    mode = namespace.get("mode", "plan")
    if mode not in MODES:
        raise ParamsError([("mode", f"{mode!r} is not a mode; use one of {', '.join(MODES)}")])
    params = parse_params(merge_params(namespace.get("params_file"), namespace), namespace.get("params_file") or "")
    # Read-only by construction: outside apply and repair the session refuses mutating calls before they are sent.
    read_only = None if mode in CHANGING_MODES else f"{notebook} in {mode} mode is read-only"
    # A lab working copy (not under the runner): a session for its audit record, and in a changing mode the
    # environment's lock held by this kernel (see run/lab.py). Both no-ops under the runner and papermill.
    session = lab.start_session(notebook, mode, params, namespace.get("params_file"), mode in CHANGING_MODES)
    aws = aws_mod.connect(params, step=notebook, read_only=read_only)
    identity = aws_mod.check_account(aws, params)
    if session is not None:
        lab.take_lock(params, identity)
    return Context(params=params, aws=aws, names=Names(params), mode=mode, identity=identity)


def finish(ctx: Context | None = None) -> None:
    """The final cell: in a lab working copy, release the lock and mark the run finished (its saved copy is then
    sealed as a run record); under the runner or papermill it does nothing."""
    marker = lab.end_session()
    if marker:
        print(marker)


def record(name: str, payload: Any) -> None:
    """Leave a step's result (e.g. checks) for the runner, when a runner started this kernel."""
    run_dir = os.environ.get(aws_mod.RUN_DIR_ENV)
    if run_dir:
        Path(run_dir, f"{name}.json").write_text(json.dumps(payload, indent=2, default=str))


def append_record(name: str, rows: list[dict]) -> None:
    """Append rows to a JSON-lines record in the run directory (when a runner started this kernel)."""
    run_dir = os.environ.get(aws_mod.RUN_DIR_ENV)
    if run_dir:
        with open(Path(run_dir, f"{name}.jsonl"), "a") as fh:
            for row in rows:
                fh.write(json.dumps(row, default=str) + "\n")
