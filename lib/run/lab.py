"""`runbook lab ENV`: JupyterLab on working copies of the notebooks for ENV, over a sandbox when params say so.

Design (why it is built this way):

* **Working copies.** The tracked notebooks/*.ipynb are never opened. `runbook lab ENV` copies them into
  ``runs/<environment>/lab/`` (not a run folder: it has no run.json and its name is no run id) with the
  parameters cell's ``params_file`` pointing at ENV's params file (absolute path), and serves that folder. Run All
  therefore writes outputs and ``.ipynb_checkpoints/`` there only; the work tree stays clean (``code_clean``).
* **Lock.** The lab server sets ``RUNBOOK_LAB_DIR`` for its kernels. `context.begin` (the setup cell) sees it and,
  unless a runner started the kernel (``RUNBOOK_RUN_DIR`` set: the runner holds the lock) and only in a changing
  mode (apply, repair; destroy runs in apply mode), takes the environment's SSM lock (lock.acquire) from inside the
  kernel, so the holder pid is the kernel's: a lock left by a kill -9'd kernel is taken over by the next holder on
  this host (lock.holder_gone), and a second operator is refused with who holds it. The lock is released by the
  final cell (`context.finish`) or, failing that, when the kernel process exits (atexit); papermill runs outside
  the runner (Airflow) never set ``RUNBOOK_LAB_DIR`` and take no lock.
* **Audit record.** Each executed setup cell opens a *session* ``runs/<env>/lab/.sessions/<run-id>/`` (session.json:
  notebook, mode, who, account, lock; calls.jsonl: the call recorder's log). The kernel cannot see the outputs the
  browser holds, so the seal happens in the lab server: a ``FileContentsManager.post_save_hook`` (and a 2 s
  autosave interval) looks at every saved working copy, and once the saved file holds the output of the final cell
  ("lab run <run-id> finished") it copies the notebook with its outputs into ``runs/<env>/<run-id>/``, writes
  run.json (the runner's record shape, command ``lab``, changes from calls.jsonl), index.html, and seals it
  (audit.seal) in one go, so a run folder never stands unsealed for longer than that. When `runbook lab` exits
  (Ctrl-C, SIGTERM) it stops JupyterLab and its kernels and seals the leftovers: sessions whose notebook was
  never saved after its last cell are sealed with the working copy as last saved, status ``interrupted``, and
  a lock still held by one of their (now dead) kernels is released.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LAB_DIR_ENV = "RUNBOOK_LAB_DIR"
SESSIONS = ".sessions"
SESSION_FILE = "session.json"
AUTOSAVE_SECONDS = 2


def finished_marker(run_id: str) -> str:
    return f"lab run {run_id} finished"


def lab_dir(environment: str) -> Path:
    from vpclink_runbooks.run.runner import runs_root

    return runs_root() / environment / "lab"


def make_working_copies(params_path: Path, environment: str) -> Path:
    """Fresh copies of notebooks/*.ipynb in runs/<env>/lab/, their params_file pointing at params_path."""
    import nbformat

    from vpclink_runbooks.run.kernels import NOTEBOOKS

    target = lab_dir(environment)
    target.mkdir(parents=True, exist_ok=True)
    for source in sorted(Path(NOTEBOOKS).glob("*.ipynb")):
        nb = nbformat.read(source, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
                lines = cell.source.split("\n")
                cell.source = "\n".join(
                    f"params_file = {str(params_path)!r}  # ENV's params file (runbook lab {environment})"
                    if line.startswith("params_file =") else line for line in lines)
        nbformat.write(nb, target / source.name)
    return target


# --- the kernel's side (called from context.begin / context.finish) -------------------------------------------

_SESSION: dict[str, Any] = {}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_session(session: dict) -> None:
    path = Path(session["dir"], SESSION_FILE)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: v for k, v in session.items() if k != "lock_obj"}, indent=2))
    tmp.replace(path)


def start_session(notebook: str, mode: str, params, params_file: str | None, changing: bool) -> dict | None:
    """In a lab kernel (not under the runner): open the session and set its call log, before connecting."""
    from vpclink_runbooks.aws import session as aws_mod
    from vpclink_runbooks.run.runner import new_run_id

    directory = os.environ.get(LAB_DIR_ENV)
    if not directory or os.environ.get(aws_mod.RUN_DIR_ENV):
        return None
    end_session(released_by="setup cell run again")  # a re-run setup cell starts a new session
    run_id = new_run_id()
    session_dir = Path(directory, SESSIONS, run_id)
    session_dir.mkdir(parents=True)
    os.environ[aws_mod.CALL_LOG_ENV] = str(session_dir / "calls.jsonl")
    _SESSION.clear()
    _SESSION.update(dir=str(session_dir), run_id=run_id, notebook=f"{notebook}.ipynb", mode=mode,
                    environment=params.environment,
                    params_file=str(Path(params_file).resolve()) if params_file else None,
                    started_at=_now(), pid=os.getpid(), status="running", changing=changing, lock=None)
    _write_session(_SESSION)
    return _SESSION


def take_lock(params, identity: dict) -> None:
    """The environment's lock, held by this kernel's pid (LockHeld names the holder)."""
    from vpclink_runbooks.aws import session as aws_mod
    from vpclink_runbooks.run import lock as lock_mod

    _SESSION.update(account=identity["account"], caller_arn=identity["caller_arn"])
    if not _SESSION.get("changing"):
        _write_session(_SESSION)
        return
    ssm = aws_mod.Aws(aws_mod.make_session(params)).ssm
    try:
        lock = lock_mod.acquire(ssm, params, caller_arn=identity["caller_arn"], run_id=_SESSION["run_id"],
                                command="lab", env_arg=params.environment)
    except lock_mod.LockHeld as exc:
        _SESSION.update(status="refused", error=str(exc), finished_at=_now())
        _write_session(_SESSION)
        _SESSION.clear()
        raise
    _SESSION["lock_obj"] = lock
    _SESSION["lock"] = {"parameter": lock.name, "took_over": lock.took_over, "holder": lock.holder}
    _write_session(_SESSION)
    if lock.took_over:
        print(f"lock: took over a stale lock of {lock_mod.describe(lock.took_over)} (its process is gone)")


def end_session(*, released_by: str = "finish") -> str | None:
    """Release the lock (if this session holds it) and mark the session finished; returns the marker line."""
    if not _SESSION:
        return None
    lock = _SESSION.pop("lock_obj", None)
    if lock is not None:
        try:
            lock.release()
            _SESSION["lock"]["released"] = released_by
        except Exception as exc:  # noqa: BLE001 - recorded; the next holder on this host takes it over
            _SESSION["lock"]["release_error"] = str(exc)
    _SESSION.update(status="finished" if released_by == "finish" else "interrupted", finished_at=_now())
    _write_session(_SESSION)
    marker = finished_marker(_SESSION["run_id"]) if released_by == "finish" else None
    _SESSION.clear()
    return marker


atexit.register(end_session, released_by="kernel stopped")


# --- the server's side: seal a finished session into runs/<env>/<run-id>/ ------------------------------------

def _has_marker(nb: dict, run_id: str) -> bool:
    marker = finished_marker(run_id)
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            text = out.get("text") or (out.get("data") or {}).get("text/plain") or ""
            if marker in ("".join(text) if isinstance(text, list) else text):
                return True
    return False


def _has_error(nb: dict) -> bool:
    return any(out.get("output_type") == "error" for cell in nb.get("cells", []) for out in cell.get("outputs", []))


def seal_session(session_dir: Path, notebook: Path, *, status: str | None = None) -> Path | None:
    """Turn a session and its saved notebook into a sealed run folder; the session folder is removed."""
    from vpclink_runbooks.present import report
    from vpclink_runbooks.run import audit
    from vpclink_runbooks.run.kernels import PROJECT_ROOT
    from vpclink_runbooks.run.runner import _api_calls, _mutating_calls, code_version

    session = json.loads((session_dir / SESSION_FILE).read_text())
    env_dir = session_dir.parent.parent.parent  # runs/<env>/lab/.sessions/<id> -> runs/<env>
    run_dir = env_dir / session["run_id"]
    if run_dir.exists():
        return None
    nb = json.loads(notebook.read_text()) if notebook.is_file() else {}
    if status is None:
        status = "failed" if _has_error(nb) else "succeeded"
    run_dir.mkdir()
    if notebook.is_file():
        shutil.copyfile(notebook, run_dir / session["notebook"])
    call_log = session_dir / "calls.jsonl"
    if call_log.exists():
        shutil.copyfile(call_log, run_dir / "calls.jsonl")
    changes, failed = _mutating_calls(run_dir / "calls.jsonl")
    params_sha = params = None
    try:
        from vpclink_runbooks.params import load_params

        loaded = load_params(session["params_file"]) if session.get("params_file") else None
        params_sha, params = (loaded.sha256(), loaded.model_dump(mode="json")) if loaded else (None, None)
    except Exception:  # noqa: BLE001 - the params file may have changed since; the record says so
        pass
    record = {
        "run_id": session["run_id"], "environment": session["environment"], "command": "lab", "status": status,
        "started_at": session["started_at"], "finished_at": session.get("finished_at") or _now(),
        "account": session.get("account"), "caller_arn": session.get("caller_arn"),
        "region": (params or {}).get("region"), "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
        "endpoint_kind": "sandbox" if (params or {}).get("sandbox") else
        "custom" if os.environ.get("AWS_ENDPOINT_URL") else "aws",
        "user": audit.local_user(), "host": socket.gethostname(), "pid": session.get("pid"),
        "params_sha256": params_sha, "params": params, "params_file": session.get("params_file"),
        "code_version": code_version(), "code_clean": audit.code_clean(PROJECT_ROOT),
        "steps": [{"notebook": session["notebook"], "mode": session["mode"], "status": status,
                   "seconds": _seconds(session)}],
        "changes": changes, "failed_changes": failed, "checks": [], "api_calls": _api_calls(run_dir / "calls.jsonl"),
        "lab": {"kernel_pid": session.get("pid"), "session_status": session.get("status")},
    }
    if session.get("lock"):
        record["lock"] = {k: v for k, v in session["lock"].items() if k != "holder"}
    if session.get("error"):
        record["error"] = session["error"]
    try:
        report.write_index(run_dir, record)
    except (OSError, ValueError) as exc:
        print(f"  (could not write index.html: {exc})", file=sys.stderr)
    audit.seal(run_dir, record)
    shutil.rmtree(session_dir, ignore_errors=True)
    return run_dir


def _seconds(session: dict) -> float:
    try:
        start = datetime.fromisoformat(session["started_at"])
        end = datetime.fromisoformat(session.get("finished_at") or _now())
        return round((end - start).total_seconds(), 1)
    except (KeyError, ValueError):
        return 0.0


def post_save_hook(model=None, os_path=None, contents_manager=None, **kwargs) -> None:
    """FileContentsManager.post_save_hook: seal every finished session of the saved notebook that it completes."""
    directory = os.environ.get(LAB_DIR_ENV)
    if not directory or not os_path or not str(os_path).endswith(".ipynb"):
        return
    path = Path(os_path)
    sessions = Path(directory, SESSIONS)
    if not sessions.is_dir():
        return
    try:
        nb = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    for session_dir in sorted(sessions.iterdir()):
        try:
            session = json.loads((session_dir / SESSION_FILE).read_text())
        except (OSError, ValueError):
            continue
        if session.get("notebook") == path.name and session.get("status") == "finished" \
                and _has_marker(nb, session["run_id"]):
            seal_session(session_dir, path)


def seal_leftovers(directory: Path) -> list[Path]:
    """When the lab stops: seal every session left (interrupted unless its saved copy shows the final cell) and
    release a lock still held by one of its dead kernels."""
    sealed = []
    sessions = directory / SESSIONS
    if not sessions.is_dir():
        return sealed
    for session_dir in sorted(sessions.iterdir()):
        try:
            session = json.loads((session_dir / SESSION_FILE).read_text())
        except (OSError, ValueError):
            shutil.rmtree(session_dir, ignore_errors=True)
            continue
        if session.get("status") == "refused":
            shutil.rmtree(session_dir, ignore_errors=True)  # changed nothing; the operator saw the refusal
            continue
        _release_dead(session)
        notebook = directory / session["notebook"]
        done = session.get("status") == "finished" and notebook.is_file() \
            and _has_marker(json.loads(notebook.read_text()), session["run_id"])
        run_dir = seal_session(session_dir, notebook, status=None if done else "interrupted")
        if run_dir:
            sealed.append(run_dir)
    return sealed


def _release_dead(session: dict) -> None:
    lock = session.get("lock") or {}
    if not lock.get("holder") or "released" in lock:
        return
    try:
        from vpclink_runbooks.aws import session as aws_mod
        from vpclink_runbooks.params import load_params
        from vpclink_runbooks.run import lock as lock_mod

        params = load_params(session["params_file"])
        held = lock_mod.Lock(aws_mod.Aws(aws_mod.make_session(params)).ssm, session["environment"], lock["holder"])
        if lock_mod.holder_gone(lock["holder"]) and held.release():
            lock["released"] = "runbook lab exit (kernel gone)"
    except Exception as exc:  # noqa: BLE001 - the next holder on this host takes it over anyway
        print(f"  could not release the lab's lock: {exc}", file=sys.stderr)


# --- `runbook lab ENV` ----------------------------------------------------------------------------------------

SERVER_CONFIG = """\
from vpclink_runbooks.run.lab import post_save_hook

c.FileContentsManager.post_save_hook = post_save_hook
# ipc, not tcp: the kernels talk over Unix sockets in the runtime folder (no "Kernel is running over TCP").
c.KernelManager.transport = "ipc"
"""


def _settings(home: Path) -> None:
    """A fresh settings and workspace folder: no news pop-up, no update check, no stale tabs; a short autosave."""
    for plugin, values in {
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "docmanager-extension/plugin": {"autosave": True, "autosaveInterval": AUTOSAVE_SECONDS},
    }.items():
        path = home / "settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def lab(args) -> int:
    from vpclink_runbooks import sandbox_link
    from vpclink_runbooks.params import load_params, resolve_params_path
    from vpclink_runbooks.sandbox.server import start_sandbox

    params = load_params(args.env)
    params_path = resolve_params_path(args.env).resolve()
    directory = make_working_copies(params_path, params.environment)
    seal_leftovers(directory)  # a previous lab killed -9 leaves sessions
    sandbox = None
    if params.sandbox and not os.environ.get("AWS_ENDPOINT_URL") and sandbox_link.running_sandbox() is None:
        sandbox = start_sandbox(account_id=params.account_id, region=params.region,
                                world=sandbox_link.world_spec_for(params))
        sandbox_link.announce(sandbox)
        sandbox_link.export(sandbox.env())
        print(f"sandbox running at {sandbox.endpoint}")
    home = Path(tempfile.mkdtemp(prefix="runbook-lab-"))
    _settings(home)
    (home / "jupyter_server_config.py").write_text(SERVER_CONFIG)
    first = "00_inspect.ipynb"
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--notebook-dir={directory}",
               f"--config={home / 'jupyter_server_config.py'}",
               "--ServerApp.ip=127.0.0.1", f"--LabApp.default_url=/lab/tree/{first}",
               "--LabApp.extension_manager=readonly", *(["--allow-root"] if os.geteuid() == 0 else [])]
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), **{LAB_DIR_ENV: str(directory)})
    env.pop("RUNBOOK_RUN_DIR", None)
    print(f"working copies for {params.environment} (params {params_path}) in {directory}", flush=True)
    # Its own process group, so stopping the lab reaches JupyterLab and every kernel it started.
    server = subprocess.Popen(command, env=env, start_new_session=True)

    def stop(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop_group(server)
        try:
            for run_dir in seal_leftovers(directory):
                print(f"lab run sealed: {run_dir}/run.json")
        finally:
            shutil.rmtree(home, ignore_errors=True)
            if sandbox is not None:
                sandbox_link.state_file().unlink(missing_ok=True)
                sandbox.stop()


def _stop_group(server: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM to JupyterLab (it shuts its kernels down), then SIGKILL to whatever of its group is left."""
    try:
        pgid = os.getpgid(server.pid)
    except ProcessLookupError:
        pgid = None
    if server.poll() is None:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    if pgid is not None:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.poll()
