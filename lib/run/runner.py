"""The runner: validate, guard, execute the notebooks with papermill, and write the run record."""

from __future__ import annotations

import ast
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = PROJECT_ROOT / "notebooks"
STEP_NOTEBOOKS = ["10_nlb", "20_vpc_link", "30_ecs_service", "40_api"]
COMMANDS: dict[str, list[tuple[str, str]]] = {
    "plan": [("00_inspect", "plan")] + [(nb, "plan") for nb in STEP_NOTEBOOKS],
    "apply": [("00_inspect", "apply")] + [(nb, "apply") for nb in STEP_NOTEBOOKS] + [("50_verify", "plan")],
    "verify": [("50_verify", "plan")],
}


# What each notebook needs done before it (apply mode); a command runs a notebook once its needs that are part of
# the command succeeded, so independent steps overlap: 30_ecs_service (task definition, rules, service) does
# not wait for the VPC link, and 20_vpc_link/40_api do not wait for the service to stabilise.
NEEDS: dict[str, tuple[str, ...]] = {
    "00_inspect": (),
    "10_nlb": ("00_inspect",),
    "20_vpc_link": ("10_nlb",),
    "30_ecs_service": ("10_nlb",),
    "40_api": ("20_vpc_link",),
    "50_verify": ("00_inspect", "10_nlb", "20_vpc_link", "30_ecs_service", "40_api"),
}
# Notebooks of one run executing at once, each in its own kernel (see KernelPool).
PARALLEL_STEPS = int(os.environ.get("RUNBOOK_PARALLEL_STEPS", "2"))
FRESH_KERNELS = os.environ.get("RUNBOOK_FRESH_KERNELS") == "1"


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


def _import_papermill():
    # nbformat imports jsonschema, which compiles rfc3987_syntax's grammars at import time when that optional
    # package is installed (~2 s of every command); nbformat's notebook schema uses no format it checks.
    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    import papermill

    return papermill


def _warm_up_code(notebook: str) -> str:
    """The notebook's own import statements: run in its kernel before its turn, so imports overlap other work."""
    cells = json.loads((NOTEBOOKS / f"{notebook}.ipynb").read_text())["cells"]
    lines = []
    for cell in cells:
        if cell["cell_type"] != "code" or "parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        try:
            tree = ast.parse("".join(cell["source"]))
        except SyntaxError:
            continue
        lines += [ast.unparse(node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    return "\n".join(lines)


# Run in a kernel after its imports and after each reset: collect what is garbage, then move every surviving object
# (modules, botocore's parsed models, pandas) out of the collector's sight, so it stops rescanning them while a
# notebook allocates (measured: ~6% less CPU a run). Defines no name. Only in the kernels, which live for one run:
# the runner may be embedded in a long-lived process whose objects must stay collectable.
_FREEZE = "__import__('gc').collect()\n__import__('gc').freeze()"


class KernelPool:
    """Kernels started before their turn and handed to papermill, then reused: start-up and imports (~1-2 s of
    CPU a kernel) are paid once per concurrent step instead of once per notebook, and overlap the account check.

    Each kernel is warmed with the import statements of the run's notebooks. Between notebooks a kernel's user
    namespace is reset (IPython's reset, new session: execution counts restart at 1), so a notebook sees nothing
    its predecessor defined; only imported modules stay loaded. A kernel whose notebook failed is discarded.
    RUNBOOK_FRESH_KERNELS=1 gives every notebook a new kernel instead.
    """

    def __init__(self, notebooks: list[str], size: int = PARALLEL_STEPS):
        self._code = "\n".join(dict.fromkeys(line for nb in notebooks for line in _warm_up_code(nb).splitlines()))
        self._remaining = len(notebooks)
        self._idle: queue.Queue[Future] = queue.Queue()
        self._all: list[Future] = []
        self._executor = ThreadPoolExecutor(max_workers=max(1, size), thread_name_prefix="kernel-start")
        for _ in range(max(1, min(size, len(notebooks)))):
            self._add()

    def _add(self) -> None:
        future = self._executor.submit(self._start)
        self._all.append(future)
        self._idle.put(future)

    def _start(self):
        import asyncio

        from jupyter_client.manager import AsyncKernelManager

        km = AsyncKernelManager(kernel_name="python3")

        async def start() -> None:
            # The kernel inherits this process's environment now: the run dir and call log are already set.
            await km.start_kernel(cwd=str(NOTEBOOKS))
            # its errors surface when a notebook's imports run
            await _send(km, self._code + "\n" + _FREEZE, wait_reply=False)

        asyncio.run(start())
        return km

    def take(self, notebook: str):
        """A started kernel manager for the notebook, or None if none can be started here (papermill then starts
        its own and reports why it cannot)."""
        future = self._idle.get()
        try:
            return future.result()
        except Exception as exc:  # noqa: BLE001 - papermill starts its own kernel and names the real problem
            print(f"  (could not start a kernel ahead for {notebook}: {exc})", file=sys.stderr)
            return None

    def give_back(self, km, succeeded: bool) -> None:
        """After a notebook: reset and reuse its kernel, or shut it down (failed, or no notebook left for it)."""
        import asyncio

        self._remaining -= 1
        reuse = succeeded and km is not None and not FRESH_KERNELS and self._remaining > 0
        if reuse:
            try:
                asyncio.run(_send(km, "get_ipython().reset(new_session=True)\n" + _FREEZE, wait_reply=True))
            except Exception as exc:  # noqa: BLE001 - a kernel that cannot reset is replaced, not reused
                print(f"  (could not reset a kernel for reuse: {exc})", file=sys.stderr)
                reuse = False
        if reuse:
            done: Future = Future()
            done.set_result(km)
            self._all.append(done)
            self._idle.put(done)
            return
        _shutdown(km)
        if succeeded and self._remaining > 0:
            self._add()

    def close(self) -> None:
        """Shut down every kernel still running (the last ones, or those a failed run never used)."""
        self._executor.shutdown(wait=True, cancel_futures=True)  # kernels not yet starting never start
        while not self._idle.empty():
            future = self._idle.get()
            if not future.cancelled() and future.exception() is None:
                _shutdown(future.result())


async def _send(km, code: str, *, wait_reply: bool) -> None:
    """Run code silently in a kernel; with wait_reply, until it finished (raising if it failed)."""
    client = km.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        msg_id = client.execute(code, silent=True, store_history=False)
        while wait_reply:
            reply = await client.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                if reply["content"]["status"] != "ok":
                    raise RuntimeError(f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}")
                break
    finally:
        client.stop_channels()


def _shutdown(km) -> None:
    import asyncio

    if km is not None:
        asyncio.run(km.shutdown_kernel(now=True))


def _execute(notebook: str, mode: str, params_path: Path, run_dir: Path, log_output: bool,
             pool: KernelPool | None = None) -> tuple[str, str]:
    """Run one notebook (in the pool's pre-started kernel when given); returns (status, error name or '')."""
    papermill = _import_papermill()
    from papermill.exceptions import PapermillExecutionError

    km = pool.take(notebook) if pool is not None else None
    status = "failed"
    try:
        papermill.execute_notebook(
            str(NOTEBOOKS / f"{notebook}.ipynb"), str(run_dir / f"{notebook}.ipynb"),
            parameters={"params_file": str(params_path), "mode": mode},
            kernel_name="python3", progress_bar=False, log_output=log_output, cwd=str(NOTEBOOKS),
            **({"km": km} if km is not None else {}),
        )
        status = "succeeded"
        return status, ""
    except PapermillExecutionError as exc:
        # boto3's message names the operation (and "reached max retries" when throttling or 5xx outlasted them)
        error = f"{exc.ename}: {exc.evalue}"
        if "(reached max retries" in exc.evalue:
            error += (" -- AWS kept failing through boto3's retries; once it recovers, run the command again: "
                      "every step resumes from what exists")
        print(f"  {notebook}: {error}", file=sys.stderr)
        return ("refused" if exc.ename in REFUSALS else "failed"), error
    finally:
        if pool is not None:
            pool.give_back(km, status == "succeeded")
        else:
            _shutdown(km)


def _warm_up_runner() -> None:
    """Import papermill and the page exporter in the background while the run checks the account and locks."""
    def imports() -> None:
        _import_papermill()
        from vpclink_runbooks.present import report

        report.offline_exporter()

    threading.Thread(target=imports, name="warm-up", daemon=True).start()


def _run_steps(steps: list[tuple[str, str]], params_path: Path, run_dir: Path, log_output: bool,
               record: dict, pool: KernelPool) -> str:
    """Execute the steps, each once the steps it needs succeeded, up to PARALLEL_STEPS at a time; a failed or
    refused step stops new steps from starting (running ones finish). Fills record["steps"]: in command order,
    with a failed or refused step last (where the run stopped). Returns the run's status."""
    names = [nb for nb, _ in steps]
    modes = dict(steps)
    needs = {nb: [d for d in NEEDS.get(nb, names[:i]) if d in modes] for i, nb in enumerate(names)}
    started = time.monotonic()
    done: dict[str, dict] = {}
    errors: dict[str, str] = {}
    pages = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pages")

    def one(notebook: str) -> dict:
        t0 = time.monotonic()
        status, error = _execute(notebook, modes[notebook], params_path, run_dir, log_output, pool)
        if error:
            errors[notebook] = error
        step = {"notebook": f"{notebook}.ipynb", "status": status, "seconds": round(time.monotonic() - t0, 2),
                "started_after": round(t0 - started, 2)}
        # Its page while the next notebooks run (one at a time: the exporter is not shared between threads).
        pages.submit(_export_page, run_dir / f"{notebook}.ipynb")
        return step

    running: dict[Future, str] = {}
    stopped = False
    with ThreadPoolExecutor(max_workers=max(1, PARALLEL_STEPS), thread_name_prefix="step") as steps_pool:
        try:
            while True:
                if not stopped:
                    for nb in names:
                        if (nb not in done and nb not in running.values()
                                and all(done.get(d, {}).get("status") == "succeeded" for d in needs[nb])
                                and len(running) < max(1, PARALLEL_STEPS)):
                            running[steps_pool.submit(one, nb)] = nb
                if not running:
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    nb = running.pop(future)
                    done[nb] = future.result()
                    stopped = stopped or done[nb]["status"] != "succeeded"
        finally:
            pages.shutdown(wait=True)
    ordered = [done[nb] for nb in names if nb in done]
    record["steps"] = ([s for s in ordered if s["status"] == "succeeded"]
                       + [s for s in ordered if s["status"] != "succeeded"])
    failed = [s for s in record["steps"] if s["status"] != "succeeded"]
    if not failed:
        return "succeeded"
    first = failed[0]["notebook"].removesuffix(".ipynb")
    record["error"] = f"{first}: {errors.get(first, '')}"
    return failed[0]["status"]


def _export_page(notebook: Path) -> None:
    """The offline HTML page of one executed notebook; a failure here never hides the run's own result."""
    if not notebook.exists():
        return
    try:
        from vpclink_runbooks.present import report

        report.export_html(notebook)
    except (ImportError, OSError, ValueError) as exc:
        print(f"  (could not write the HTML page of {notebook.name}: {exc})", file=sys.stderr)


def _mutating_calls(call_log: Path) -> tuple[list[dict], list[dict]]:
    """(changes, failed): every mutating call with its target resource, result and time, split by result."""
    if not call_log.exists():
        return [], []
    calls = [json.loads(line) for line in call_log.read_text().splitlines() if line.strip()]
    rows = [{"service": c["service"], "operation": c["operation"], "resource": c["resource"], "result": c["result"],
             "at": datetime.fromtimestamp(c["time"], UTC).isoformat(timespec="milliseconds")}
            for c in calls if c["mutating"]]
    return [r for r in rows if r["result"] == "ok"], [r for r in rows if r["result"] != "ok"]


def _api_calls(call_log: Path) -> dict:
    """run.json's api_calls: the run's AWS calls, how many were mutating, how many answers were throttling and
    how many attempts boto3 retried (the recorder's per-call counts in calls.jsonl)."""
    calls = [json.loads(line) for line in call_log.read_text().splitlines() if line.strip()] \
        if call_log.exists() else []
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
    started = now()
    run_id, run_dir = new_run_dir(params.environment)
    call_log = run_dir / "calls.jsonl"
    os.environ[aws_mod.RUN_DIR_ENV] = str(run_dir)
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
    steps = notebooks or notebooks_for(command, yes)
    # The kernels start now (they inherit the run dir and call log above), while the account is checked.
    pool = KernelPool([nb for nb, _ in steps])
    _warm_up_runner()
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
        status = _run_steps(steps, params_path, run_dir, log_output, record, pool)
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


def run_many(envs: list[str], *, parallel: int = 1, confirm: str | None = None, log_output: bool = False) -> int:
    """`runbook apply ENV1 ENV2 ... --parallel N`: one `runbook apply ENV` process per environment (each with its
    own lock and run record), at most N at once; prints each summary as it finishes. Exit code: the worst."""
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
    # Runs side by side already fill the cores: each run then executes its notebooks one at a time in one kernel
    # (same wall time for the batch, a third less memory), unless RUNBOOK_PARALLEL_STEPS says otherwise.
    child_env = dict(os.environ)
    if parallel > 1:
        child_env.setdefault("RUNBOOK_PARALLEL_STEPS", "1")

    def one(env: str) -> tuple[str, subprocess.CompletedProcess]:
        command = [sys.executable, "-m", "vpclink_runbooks.cli", "apply", env,
                   *(["--confirm", confirm] if confirm else []), *(["--log-output"] if log_output else [])]
        return env, subprocess.run(command, capture_output=True, text=True, env=child_env)

    codes = []
    try:
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="apply") as executor:
            for future in [executor.submit(one, env) for env in envs]:
                env, done = future.result()
                codes.append(done.returncode)
                print(done.stdout, end="")
                print(done.stderr, end="", file=sys.stderr)
        failed = [env for env, code in zip(envs, codes, strict=True) if code]
        print(f"{len(envs) - len(failed)} of {len(envs)} environment(s) applied in "
              f"{time.monotonic() - started:.1f}s (--parallel {parallel})"
              + (f"; not applied: {', '.join(failed)}" if failed else ""))
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
