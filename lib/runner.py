"""The runner: validate, guard, execute the notebooks with papermill, and write the run record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from . import audit, sandbox_link
from . import aws as aws_mod
from . import lock as lock_mod
from .context import RUN_DIR_ENV
from .errors import GuardRefused, ParamsError, RunbookError
from .params import Params, load_params, resolve_params_path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = PROJECT_ROOT / "notebooks"
STEP_NOTEBOOKS = ["10_nlb", "20_vpc_link", "30_ecs_service", "40_api"]
COMMANDS: dict[str, list[tuple[str, str]]] = {
    "plan": [("00_inspect", "plan")] + [(nb, "plan") for nb in STEP_NOTEBOOKS],
    "apply": [("00_inspect", "apply")] + [(nb, "apply") for nb in STEP_NOTEBOOKS] + [("50_verify", "plan")],
    "verify": [("50_verify", "plan")],
}


def notebooks_for(command: str, yes: bool) -> list[tuple[str, str]]:
    """The (notebook, mode) sequence of a command; destroy and repair change AWS only with --yes."""
    if command == "destroy":
        return [("90_destroy", "apply" if yes else "plan")]
    if command == "repair":
        return [("50_verify", "repair" if yes else "repair-plan")]
    return COMMANDS[command]
MUTATING_COMMANDS = {"apply", "repair", "destroy"}

# Errors raised inside a notebook that mean "refused, nothing changed" rather than "failed".
REFUSALS = {"ParamsError", "GuardRefused", "PreflightRefused"}


def takes_lock(command: str, yes: bool) -> bool:
    """Commands that change AWS hold the environment's lock (destroy and repair only with --yes)."""
    return command == "apply" or (command in ("destroy", "repair") and yes)


@dataclass
class RunResult:
    exit_code: int
    run_dir: Path | None
    record: dict = field(default_factory=dict)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def code_version() -> str:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, timeout=5, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import version

        return version("vpclink-runbooks")


def runs_root() -> Path:
    return Path(os.environ.get("RUNBOOK_RUNS_DIR", PROJECT_ROOT / "runs"))


def new_run_dir(environment: str) -> tuple[str, Path]:
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    path = runs_root() / environment / run_id
    path.mkdir(parents=True)
    return run_id, path


def check_protected(params: Params, command: str, confirm: str | None) -> None:
    if params.protected and command in MUTATING_COMMANDS:
        expected = f"{params.environment}@{params.account_id}"
        if confirm != expected:
            raise GuardRefused(
                f"{params.environment} is protected: {command} needs --confirm {expected} "
                "(the environment and the account it runs against). Nothing was changed."
            )


def _execute(notebook: str, mode: str, params_path: Path, run_dir: Path, log_output: bool) -> tuple[str, str]:
    """Run one notebook; returns (status, error name or '')."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    try:
        papermill.execute_notebook(
            str(NOTEBOOKS / f"{notebook}.ipynb"), str(run_dir / f"{notebook}.ipynb"),
            parameters={"params_file": str(params_path), "mode": mode},
            kernel_name="python3", progress_bar=False, log_output=log_output, cwd=str(NOTEBOOKS),
        )
        return "succeeded", ""
    except PapermillExecutionError as exc:
        # boto3's message names the operation (and "reached max retries" when throttling or 5xx outlasted them)
        error = f"{exc.ename}: {exc.evalue}"
        if "(reached max retries" in exc.evalue:
            error += (" -- AWS kept failing through boto3's retries; once it recovers, run the command again: "
                      "every step resumes from what exists")
        print(f"  {notebook}: {error}", file=sys.stderr)
        return ("refused" if exc.ename in REFUSALS else "failed"), error


def _mutating_calls(call_log: Path) -> tuple[list[dict], list[dict]]:
    """(changes, failed): every mutating call with its target resource, result and time, split by result."""
    if not call_log.exists():
        return [], []
    calls = [json.loads(line) for line in call_log.read_text().splitlines() if line.strip()]
    rows = [{"service": c["service"], "operation": c["operation"], "resource": c["resource"], "result": c["result"],
             "at": datetime.fromtimestamp(c["time"], UTC).isoformat(timespec="milliseconds")}
            for c in calls if c["mutating"]]
    return [r for r in rows if r["result"] == "ok"], [r for r in rows if r["result"] != "ok"]


def run(command: str, env: str, *, confirm: str | None = None, log_output: bool = False, yes: bool = False,
        notebooks: list[tuple[str, str]] | None = None) -> RunResult:
    """Run a command for one environment and leave runs/<env>/<run-id>/ with run.json."""
    result = _run(command, env, confirm=confirm, log_output=log_output, yes=yes, notebooks=notebooks)
    if result.exit_code == 0 and result.record.get("status") == "failed":  # the lock could not be released
        result.exit_code = 1
    return result


def _run(command: str, env: str, *, confirm: str | None, log_output: bool, yes: bool,
         notebooks: list[tuple[str, str]] | None) -> RunResult:
    params = load_params(env)  # ParamsError: before any AWS call
    check_protected(params, command, confirm)
    params_path = resolve_params_path(env).resolve()
    owned = sandbox_link.ensure_sandbox(params) if params.sandbox else None
    started = now()
    run_id, run_dir = new_run_dir(params.environment)
    call_log = run_dir / "calls.jsonl"
    os.environ[RUN_DIR_ENV] = str(run_dir)
    os.environ[aws_mod.CALL_LOG_ENV] = str(call_log)
    record = {
        "run_id": run_id, "environment": params.environment, "command": command, "status": "failed",
        "started_at": started, "finished_at": None, "account": None, "caller_arn": None,
        "region": params.region, "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
        "params_sha256": params.sha256(), "params": params.model_dump(mode="json"),
        "code_version": code_version(), "code_clean": audit.code_clean(PROJECT_ROOT), "steps": [], "changes": [],
        "failed_changes": [], "checks": [],
    }
    exit_code = 1
    lock = None
    try:
        aws = aws_mod.connect(params)
        try:
            identity = aws_mod.check_account(aws, params)
        except GuardRefused as exc:
            record["status"] = "refused"
            record["error"] = str(exc)
            print(exc, file=sys.stderr)
            exit_code = 2
            return RunResult(exit_code, run_dir, record)
        record["account"], record["caller_arn"] = identity["account"], identity["caller_arn"]
        if takes_lock(command, yes):
            # Its own session, without the call recorder: the lock is bookkeeping, not a change to the chain.
            ssm = aws_mod.Aws(aws_mod.make_session(params)).ssm
            try:
                lock = lock_mod.acquire(ssm, params, caller_arn=identity["caller_arn"], run_id=run_id,
                                        command=command, env_arg=env)
            except lock_mod.LockHeld as exc:
                record["status"] = "refused"
                record["error"] = str(exc)
                print(exc, file=sys.stderr)
                exit_code = 2
                return RunResult(exit_code, run_dir, record)
            record["lock"] = {"parameter": lock.name, "took_over": lock.took_over}
            if lock.took_over:
                print(f"lock: took over a stale lock of {lock_mod.describe(lock.took_over)} "
                      "(its process is gone from this host)", file=sys.stderr)
        status = "succeeded"
        for notebook, mode in notebooks or notebooks_for(command, yes):
            t0 = time.monotonic()
            step_status, error = _execute(notebook, mode, params_path, run_dir, log_output)
            record["steps"].append({"notebook": f"{notebook}.ipynb", "status": step_status,
                                    "seconds": round(time.monotonic() - t0, 2)})
            if step_status != "succeeded":
                status = step_status
                record["error"] = f"{notebook}: {error}"
                break
        plan_file = run_dir / "plan.jsonl"
        if plan_file.exists():
            record["plan"] = [json.loads(line) for line in plan_file.read_text().splitlines() if line.strip()]
        checks_file = run_dir / "checks.json"
        if checks_file.exists():
            record["checks"] = json.loads(checks_file.read_text())
        if status == "succeeded" and any(c["status"] == "fail" for c in record["checks"]):
            status = "failed"
        record["status"] = status
        exit_code = {"succeeded": 0, "refused": 2}.get(status, 1)
        return RunResult(exit_code, run_dir, record)
    except (ClientError, BotoCoreError) as exc:
        # An AWS call of the runner's own (the caller's identity, the lock) failed: the run fails, naming it.
        record["error"] = f"runner: {type(exc).__name__}: {exc}"
        print(f"  error: {record['error']}", file=sys.stderr)
        return RunResult(1, run_dir, record)
    finally:
        if lock is not None and (release_error := _release(lock)):
            # Done, but the lock stays held: every later run elsewhere is refused, so the run fails, saying why.
            record["status"], record["error"] = "failed", f"runner: could not release the lock: {release_error}"
        record["changes"], record["failed_changes"] = _mutating_calls(call_log)
        record["finished_at"] = now()
        # The pages first (index.html summarises the record), then the seal: run.json with the hashes of
        # every other file of the run and of the previous record (see audit.py).
        try:
            try:
                _write_pages(run_dir, record)
            finally:
                audit.seal(run_dir, record)
        finally:
            os.environ.pop(RUN_DIR_ENV, None)
            os.environ.pop(aws_mod.CALL_LOG_ENV, None)
            if owned is not None:
                owned.stop()


def _release(lock: lock_mod.Lock) -> str | None:
    """Give the lock back; on failure, why and how to recover (the run's own changes stay recorded)."""
    try:
        lock.release()
    except (ClientError, BotoCoreError) as exc:
        why = (f"{lock.name} ({exc}); the next run on this host takes it over, elsewhere break it with "
               "`runbook unlock ENV --force`")
        print(f"  could not release the lock {why}", file=sys.stderr)
        return why
    return None


def _write_pages(run_dir: Path, record: dict) -> None:
    """Offline HTML pages of the run; a failure here never hides the run's own result."""
    try:
        from . import report

        for step in record["steps"]:
            notebook = run_dir / step["notebook"]
            if notebook.exists():
                report.export_html(notebook)
        report.write_index(run_dir, record)
    except (ImportError, OSError, ValueError) as exc:
        print(f"  (could not write HTML pages: {exc})", file=sys.stderr)


def main_error(exc: RunbookError) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return exc.exit_code


__all__ = ["run", "RunResult", "COMMANDS", "ParamsError", "check_protected"]
