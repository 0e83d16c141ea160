"""The runner: validate, guard, execute the notebooks with papermill, and write the run record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from vpclink_runbooks import sandbox_link
from vpclink_runbooks.aws import session as aws_mod
from vpclink_runbooks.errors import GuardRefused, ParamsError, RunbookError
from vpclink_runbooks.params import Params, load_params, resolve_params_path
from vpclink_runbooks.run import audit
from vpclink_runbooks.run import lock as lock_mod

# Moved to kernels.py and schedule.py; imported from here by tests, benchmarks and the cli.
from vpclink_runbooks.run.kernels import (  # noqa: F401
    FRESH_KERNELS,
    NOTEBOOKS,
    PARALLEL_STEPS,
    PROJECT_ROOT,
    KernelPool,
    _import_papermill,
    _send,
    _shutdown,
    _warm_up_code,
    _warm_up_runner,
)
from vpclink_runbooks.run.schedule import NEEDS, REFUSALS, _execute, _export_page, _run_steps  # noqa: F401
from vpclink_runbooks.steps import registry

# The notebooks and their order come from the step registry (steps/registry.py).
_INSPECT, _VERIFY, _DESTROY = registry.INSPECT.notebook, registry.VERIFY.notebook, registry.DESTROY.notebook
STEP_NOTEBOOKS = [step.notebook for step in registry.CHAIN]
COMMANDS: dict[str, list[tuple[str, str]]] = {
    "plan": [(_INSPECT, "plan")] + [(nb, "plan") for nb in STEP_NOTEBOOKS],
    "apply": [(_INSPECT, "apply")] + [(nb, "apply") for nb in STEP_NOTEBOOKS] + [(_VERIFY, "plan")],
    "verify": [(_VERIFY, "plan")],
}


def notebooks_for(command: str, yes: bool) -> list[tuple[str, str]]:
    """The (notebook, mode) sequence of a command; destroy and repair change AWS only with --yes."""
    if command == "destroy":
        return [(_DESTROY, "apply" if yes else "plan")]
    if command == "repair":
        return [(_VERIFY, "repair" if yes else "repair-plan")]
    return COMMANDS[command]
MUTATING_COMMANDS = {"apply", "repair", "destroy"}


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


def new_run_id() -> str:
    """A run id: UTC time, then 6 random hex digits (audit.RUN_ID); sorts in run order."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def new_run_dir(environment: str) -> tuple[str, Path]:
    run_id = new_run_id()
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



def _read_calls(call_log: Path) -> list[dict]:
    """The calls of calls.jsonl; a last line cut off by a killed run is left out (the call's answer never came)."""
    if not call_log.exists():
        return []
    calls = []
    for line in call_log.read_text().splitlines():
        try:
            calls.append(json.loads(line))
        except ValueError:
            continue
    return calls


def _mutating_calls(call_log: Path) -> tuple[list[dict], list[dict]]:
    """(changes, failed): every mutating call with its target resource, result and time, split by result."""
    calls = _read_calls(call_log)
    rows = [{"service": c["service"], "operation": c["operation"], "resource": c["resource"], "result": c["result"],
             "at": datetime.fromtimestamp(c["time"], UTC).isoformat(timespec="milliseconds"),
             "request_id": c.get("request_id")}  # to find the call in CloudTrail
            for c in calls if c["mutating"]]
    return [r for r in rows if r["result"] == "ok"], [r for r in rows if r["result"] != "ok"]


def _api_calls(call_log: Path) -> dict:
    """run.json's api_calls: the run's AWS calls, how many were mutating, how many answers were throttling and
    how many attempts boto3 retried (the recorder's per-call counts in calls.jsonl)."""
    calls = _read_calls(call_log)
    return {"total": len(calls), "mutating": sum(bool(c["mutating"]) for c in calls),
            "throttled": sum(c.get("throttled", 0) for c in calls), "retried": sum(c.get("retries", 0) for c in calls)}


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
    seal_interrupted(params.environment)  # earlier runs of this environment that were killed, before ours starts
    started = now()
    run_id, run_dir = new_run_dir(params.environment)
    call_log = run_dir / "calls.jsonl"
    os.environ[aws_mod.RUN_DIR_ENV] = str(run_dir)
    os.environ[aws_mod.CALL_LOG_ENV] = str(call_log)
    record = _new_record(run_id, params, command, started)
    record["fresh_sandbox"] = owned is not None  # this run's own sandbox: nothing of earlier runs is in it
    record["plan_only"] = command in ("destroy", "repair") and not yes  # shows its plan, changes nothing
    audit.write_marker(run_dir, record)  # running.json: if this process dies, the next command seals the run
    lock = None
    steps = notebooks or notebooks_for(command, yes)
    # The kernels start now (they inherit the run dir and call log above), while the account is checked.
    pool = KernelPool([nb for nb, _ in steps])
    _warm_up_runner()
    try:
        try:  # an unusable aws_profile or role_arn (CredentialsRefused) and the account guard refuse alike
            aws = aws_mod.connect(params)
            identity = aws_mod.check_account(aws, params)
        except GuardRefused as exc:
            return _refused(run_dir, record, exc)
        record["account"], record["caller_arn"] = identity["account"], identity["caller_arn"]
        audit.write_marker(run_dir, record)
        if takes_lock(command, yes):
            try:
                lock = _acquire(params, record, identity, run_id=run_id, command=command, env=env)
            except lock_mod.LockHeld as exc:
                return _refused(run_dir, record, exc)
        status = _collect(run_dir, record, _run_steps(steps, params_path, run_dir, log_output, record, pool))
        record["status"] = status
        exit_code = {"succeeded": 0, "refused": 2}.get(status, 1)
        return RunResult(exit_code, run_dir, record)
    except (ClientError, BotoCoreError) as exc:
        # An AWS call of the runner's own (the caller's identity, the lock) failed: the run fails, naming it.
        record["error"] = f"runner: {type(exc).__name__}: {exc}"
        print(f"  error: {record['error']}", file=sys.stderr)
        return RunResult(1, run_dir, record)
    finally:
        pool.close()
        _finish(run_dir, record, lock, call_log, owned)


def _new_record(run_id: str, params: Params, command: str, started: str) -> dict:
    """run.json as it starts: failed until the steps say otherwise."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    return {
        "run_id": run_id, "environment": params.environment, "command": command, "status": "failed",
        "started_at": started, "finished_at": None, "account": None, "caller_arn": None,
        "region": params.region, "endpoint": endpoint,
        "endpoint_kind": "sandbox" if params.sandbox else "custom" if endpoint else "aws",
        "user": audit.local_user(), **audit.process_marks(),
        "params_sha256": params.sha256(), "params": params.model_dump(mode="json"),
        "code_version": code_version(), "code_clean": audit.code_clean(PROJECT_ROOT), "steps": [], "changes": [],
        "failed_changes": [], "checks": [],
    }


def _refused(run_dir: Path, record: dict, exc: Exception) -> RunResult:
    """A guard of the runner's own refused (the account, the lock): nothing was changed, exit code 2."""
    record["status"] = "refused"
    record["error"] = str(exc)
    print(exc, file=sys.stderr)
    return RunResult(2, run_dir, record)


def _acquire(params: Params, record: dict, identity: dict, *, run_id: str, command: str, env: str) -> lock_mod.Lock:
    """The environment's lock (LockHeld when another run holds it), noted in the record."""
    # Its own session, without the call recorder: the lock is bookkeeping, not a change to the chain.
    ssm = aws_mod.Aws(aws_mod.make_session(params)).ssm
    lock = lock_mod.acquire(ssm, params, caller_arn=identity["caller_arn"], run_id=run_id,
                            command=command, env_arg=env)
    record["lock"] = {"parameter": lock.name, "took_over": lock.took_over}
    if lock.took_over:
        print(f"lock: took over a stale lock of {lock_mod.describe(lock.took_over)} "
              "(its process is gone from this host)", file=sys.stderr)
    return lock


def _collect(run_dir: Path, record: dict, status: str) -> str:
    """What the notebooks left in the run folder, into the record; the run's status (a failed check fails it)."""
    plan_file = run_dir / "plan.jsonl"
    if plan_file.exists():
        record["plan"] = [json.loads(line) for line in plan_file.read_text().splitlines() if line.strip()]
    checks_file = run_dir / "checks.json"
    if checks_file.exists():
        record["checks"] = json.loads(checks_file.read_text())
    request_file = run_dir / "request.json"  # the custom-domain request verify sent (checks._probes)
    if request_file.exists():
        record["request"] = json.loads(request_file.read_text())
    if status == "succeeded" and any(c["status"] == "fail" for c in record["checks"]):
        status = "failed"
    return status


def _finish(run_dir: Path, record: dict, lock: lock_mod.Lock | None, call_log: Path, owned) -> None:
    """Release the lock, record the calls, write the pages and seal run.json; then stop an owned sandbox."""
    if lock is not None and (release_error := _release(lock)):
        # Done, but the lock stays held: every later run elsewhere is refused, so the run fails, saying why.
        record["status"], record["error"] = "failed", f"runner: could not release the lock: {release_error}"
    record["changes"], record["failed_changes"] = _mutating_calls(call_log)
    record["api_calls"] = _api_calls(call_log)
    record["finished_at"] = now()
    # The pages first (index.html summarises the record), then the seal: run.json with the hashes of
    # every other file of the run and of the previous record (see audit.py).
    try:
        try:
            _write_pages(run_dir, record)
        finally:
            audit.seal(run_dir, record)
    finally:
        os.environ.pop(aws_mod.RUN_DIR_ENV, None)
        os.environ.pop(aws_mod.CALL_LOG_ENV, None)
        if owned is not None:
            owned.stop()


def seal_interrupted(environment: str) -> list[Path]:
    """Seal the environment's run folders whose process is gone (killed mid-run) as status "interrupted", with
    the calls they made and what their notebooks left; returns them. Runs of other hosts are left alone."""
    sealed = []
    for run_dir, marker in audit.claim_interrupted(runs_root() / environment):
        record = {key: value for key, value in marker.items() if key not in ("artifacts", "previous")}
        record.update(run_id=run_dir.name, environment=record.get("environment") or environment,
                      status="interrupted", steps=[{"notebook": p.name, "status": "interrupted"}
                                                   for p in sorted(run_dir.glob("*.ipynb"))])
        record.setdefault("checks", [])
        _collect(run_dir, record, "interrupted")
        record["changes"], record["failed_changes"] = _mutating_calls(run_dir / "calls.jsonl")
        record["api_calls"] = _api_calls(run_dir / "calls.jsonl")
        record["finished_at"] = datetime.fromtimestamp(audit.last_activity(run_dir), UTC).isoformat(
            timespec="seconds")  # its last sign of life
        gone = f"process {marker['pid']} on {marker['host']} is gone" if marker.get("pid") else \
            f"no running.json and nothing changed for {audit.ORPHAN_SECONDS} s"
        record["interrupted"] = {"detected_at": now(), "why": gone, "sealed_by": audit.process_marks()}
        record["error"] = record.get("error") or f"interrupted: {gone}; the run did not finish"
        _write_interrupted_pages(run_dir, record)
        audit.seal(run_dir, record)
        print(f"sealed {environment}/{run_dir.name} as interrupted ({gone}; {len(record['changes'])} change(s))",
              file=sys.stderr)
        sealed.append(run_dir)
    return sealed


def _write_interrupted_pages(run_dir: Path, record: dict) -> None:
    """The pages of an interrupted run: each notebook as far as it got (one cut off mid-write is skipped), then
    index.html."""
    try:
        from vpclink_runbooks.present import report
    except ImportError as exc:
        print(f"  (could not write HTML pages: {exc})", file=sys.stderr)
        return
    for step in record["steps"]:
        notebook = run_dir / step["notebook"]
        if not notebook.with_suffix(".html").exists():
            try:
                report.export_html(notebook)
            except (OSError, ValueError) as exc:
                step["page"] = f"not written: {type(exc).__name__}"
    try:
        report.write_index(run_dir, record)
    except (OSError, ValueError) as exc:
        print(f"  (could not write index.html: {exc})", file=sys.stderr)


def run_many(envs: list[str], *, command: str = "apply", parallel: int = 1, confirm: str | None = None,
             log_output: bool = False, yes: bool = False) -> int:
    """`runbook apply ENV1 ENV2 ... --parallel N` (or `destroy ... --yes`): one `runbook COMMAND ENV` process per
    environment (each with its own lock and run record), at most N at once; prints each summary as it finishes.
    Exit code: the worst."""
    if parallel < 1:
        raise ParamsError([("--parallel", f"{parallel} is not a number of runs at once; use 1 or more")])
    params = [load_params(env) for env in envs]  # every ENV valid before any AWS call
    names = [p.environment for p in params]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ParamsError([("ENV", f"environment {', '.join(duplicates)} given twice; each runs once")])
    # One emulator for all sandbox environments (the runs find it through AWS_ENDPOINT_URL).
    first = next((p for p in params if p.sandbox), None)
    owned = sandbox_link.ensure_sandbox(first) if first is not None else None
    started = time.monotonic()
    # Runs side by side fill the cores, most of all as they start: each run then executes at most two notebooks at
    # once (a kernel less than alone; two still overlap AWS's waits, as 30_ecs_service ends before the VPC link is
    # AVAILABLE and 40_api takes its slot) and starts one kernel ahead, not two (the second starts when
    # 30_ecs_service needs it, while the NLB provisions). RUNBOOK_PARALLEL_STEPS / RUNBOOK_KERNELS_AHEAD say
    # otherwise.
    child_env = dict(os.environ)
    if parallel > 1:
        child_env.setdefault("RUNBOOK_PARALLEL_STEPS", "2")
        child_env.setdefault("RUNBOOK_KERNELS_AHEAD", "1")

    def one(env: str) -> tuple[str, subprocess.CompletedProcess]:
        argv = [sys.executable, "-m", "vpclink_runbooks.cli", command, env, *(["--yes"] if yes else []),
                *(["--confirm", confirm] if confirm else []), *(["--log-output"] if log_output else [])]
        return env, subprocess.run(argv, capture_output=True, text=True, env=child_env)

    codes = []
    try:
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix=command) as executor:
            for future in [executor.submit(one, env) for env in envs]:
                env, done = future.result()
                codes.append(done.returncode)
                print(done.stdout, end="")
                print(done.stderr, end="", file=sys.stderr)
        failed = [env for env, code in zip(envs, codes, strict=True) if code]
        done_word = {"apply": "applied", "destroy": "destroyed" if yes else "planned for destroy"}[command]
        print(f"{len(envs) - len(failed)} of {len(envs)} environment(s) {done_word} in "
              f"{time.monotonic() - started:.1f}s (--parallel {parallel})"
              + (f"; not {done_word}: {', '.join(failed)}" if failed else ""))
        return max(codes)
    finally:
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
        from vpclink_runbooks.present import report

        for step in record["steps"]:  # each step's page was written when it finished (see _run_steps)
            notebook = run_dir / step["notebook"]
            if notebook.exists() and not notebook.with_suffix(".html").exists():
                report.export_html(notebook)
        report.write_index(run_dir, record)
    except (ImportError, OSError, ValueError) as exc:
        print(f"  (could not write HTML pages: {exc})", file=sys.stderr)


def main_error(exc: RunbookError) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return exc.exit_code


__all__ = ["run", "RunResult", "COMMANDS", "ParamsError", "check_protected"]
