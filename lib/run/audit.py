"""Audit records: what code ran, sealing a run directory, verifying the seals, pushing records to S3.

Tamper evidence (see README "Audit records"):

* When a run has written everything else (executed notebooks, HTML pages, calls.jsonl, plan.jsonl,
  checks.json, index.html), the runner seals it: run.json gets ``artifacts`` -- the SHA-256 of every
  other file in the run directory -- and ``previous`` -- the run id and the SHA-256 of the final
  run.json bytes of the environment's previous run (by run-id order). Then run.json is written and
  its own SHA-256 goes into the sibling ``run.json.sha256``.
* The records of one environment thus form a hash chain: changing any byte of an artifact breaks
  that record's ``artifacts``; changing run.json (including its artifact hashes) breaks the next
  record's ``previous``; deleting a record leaves a dangling ``previous``. Only the newest record
  has no successor: its run.json is covered by ``run.json.sha256``, which someone who can write the
  directory can rewrite too -- push the records off the host (``runbook runs --push``) to pin it.

Runs that never finish (see README "Audit records"):

* At its start the runner writes ``running.json`` into its folder: the record so far with ``status``
  "running", the ``host`` and the ``pid`` (and the process's start time, so a reused pid is not
  taken for the run). It is not part of the seal: sealing removes it.
* Every later command on the environment (``runbook plan|apply|verify|destroy|repair|runs``), before
  it creates its own folder, seals the folders whose run is certainly gone -- ``running.json`` says
  this host and that process no longer exists -- as ``status`` "interrupted", with the calls it
  made (``changes``, ``failed_changes``, ``api_calls`` from its calls.jsonl) and what its notebooks
  left (plan.jsonl, checks.json). A folder of another host's run is never sealed here: it is listed
  as "running" until that host seals it. A run folder with no running.json at all (a run of an
  older version that was killed) is sealed as interrupted once nothing in it changed for
  ORPHAN_SECONDS.
* ``previous`` only ever names sealed records, so a run that is still going (another command on the
  same environment, e.g. a plan while an apply holds the lock) is skipped and chains to nothing
  until it is sealed itself: each record then points at the latest record sealed before it in
  run-id order. A record sealed after later ones (interrupted, or a long run beside shorter ones)
  has no successor naming its hash; like the newest record it is pinned by its sidecar and a push.
* Only folders named like run ids (``20261202T075242Z-1a2b3c``, see runner.new_run_dir) are run
  folders; anything else under runs/ENV/ (e.g. ``lab/``) is not a record.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

RECORD = "run.json"
SIDECAR = "run.json.sha256"
# Files of a run directory that the seal does not cover (the record itself and its checksum).
UNSEALED = {RECORD, SIDECAR}
# The record of a run while it runs (status "running", host, pid); sealing removes it.
MARKER = "running.json"
_CLAIM = ".running.claimed"  # a marker taken by the command that seals the run as interrupted
RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")
# A run folder without a marker (an older version's killed run) is sealed when nothing in it changed this long:
# a live run writes calls.jsonl at least at every poll of its waits.
ORPHAN_SECONDS = 3600


def is_run_dir(path: Path) -> bool:
    """A folder named like a run id (see runner.new_run_dir); runs/ENV/lab/ and the like are not runs."""
    return path.is_dir() and RUN_ID.match(path.name) is not None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def code_clean(root: Path) -> bool | None:
    """Whether the tracked code at root is as committed; None when it is not a git work tree.

    Untracked files (export output, a user's own params files, terraform/) and the params/ folder are not
    code: they never make it dirty. A changed, staged or deleted tracked file elsewhere (lib/, notebooks/) does.
    """
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                              ":(exclude)params/"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() == ""


def artifact_hashes(run_dir: Path) -> dict[str, str]:
    """{relative path: sha256} of every file in run_dir except run.json and its checksum."""
    return {
        path.relative_to(run_dir).as_posix(): sha256_file(path)
        for path in sorted(run_dir.rglob("*"))
        if path.is_file() and path.relative_to(run_dir).as_posix() not in UNSEALED
    }


def previous_record(run_dir: Path) -> dict | None:
    """The run id and run.json hash of the environment's latest sealed run before this one."""
    # Sealed records only: a run still going (its running.json, no run.json yet) is never a previous record.
    earlier = sorted(p for p in run_dir.parent.iterdir() if is_run_dir(p) and p.name < run_dir.name
                     and (p / RECORD).is_file())
    if not earlier:
        return None
    last = earlier[-1]
    return {"run_id": last.name, "sha256": sha256_file(last / RECORD)}


def seal(run_dir: Path, record: dict) -> dict:
    """Write run.json with the artifact hashes and the link to the previous record, then its checksum.

    Call it last: every file written to run_dir afterwards shows up as "added after the run". The run's
    running.json marker is removed first: a sealed run is no longer running.
    """
    (run_dir / MARKER).unlink(missing_ok=True)
    (run_dir / _CLAIM).unlink(missing_ok=True)
    record["artifacts"] = artifact_hashes(run_dir)
    record["previous"] = previous_record(run_dir)
    data = json.dumps(record, indent=2).encode()
    (run_dir / RECORD).write_bytes(data)
    (run_dir / SIDECAR).write_text(f"{hashlib.sha256(data).hexdigest()}  {RECORD}\n")
    return record


def _env_dirs(root: Path, env: str | None) -> list[Path]:
    if env:
        return [root / env]
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def run_dirs(root: Path, env: str | None = None) -> list[Path]:
    """Run directories with a run.json, per environment in run-id order."""
    return [p for env_dir in _env_dirs(root, env) if env_dir.is_dir()
            for p in sorted(env_dir.iterdir()) if is_run_dir(p) and (p / RECORD).is_file()]


def unsealed_dirs(root: Path, env: str | None = None) -> list[Path]:
    """Run directories without a run.json (running, or killed and not sealed yet), in run-id order."""
    return [p for env_dir in _env_dirs(root, env) if env_dir.is_dir()
            for p in sorted(env_dir.iterdir()) if is_run_dir(p) and not (p / RECORD).is_file()
            and not (p / SIDECAR).is_file()]  # a sidecar without run.json: a deleted record (verify says so)


# --- running and interrupted runs ----------------------------------------------------------------------


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22); None where unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def local_user() -> str | None:
    """The local login name that runs this (records and notebook headers); None where there is none."""
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return None


def process_marks() -> dict:
    """host, pid and pid_started of this process, for running.json."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_started": _process_start(os.getpid())}


def write_marker(run_dir: Path, record: dict) -> None:
    """running.json: the record so far, status "running", with this host and process (written atomically)."""
    marker = {**record, "status": "running", **process_marks()}
    tmp = run_dir / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(marker, indent=2))
    os.replace(tmp, run_dir / MARKER)


def read_marker(run_dir: Path) -> dict | None:
    try:
        marker = json.loads((run_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def run_state(run_dir: Path) -> str:
    """Of an unsealed run folder: "running" (its process lives, or it runs on another host: not ours to judge),
    "gone" (this host, its process is gone) or "unrecorded" (no running.json)."""
    marker = read_marker(run_dir)
    if marker is None:
        return "unrecorded"
    if marker.get("host") != socket.gethostname() or not isinstance(marker.get("pid"), int):
        return "running"
    try:
        os.kill(marker["pid"], 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:  # alive, another user's
        return "running"
    started = _process_start(marker["pid"])
    if marker.get("pid_started") and started and started != marker["pid_started"]:
        return "gone"  # the pid was reused by a later process
    return "running"


def last_activity(run_dir: Path) -> float:
    """When anything in the folder last changed (its newest file's mtime)."""
    times = [p.stat().st_mtime for p in run_dir.rglob("*") if p.is_file()]
    return max(times, default=run_dir.stat().st_mtime)


def claim_interrupted(env_dir: Path) -> list[tuple[Path, dict]]:
    """The run folders of env_dir whose run is certainly gone, each with the record its marker held. The marker
    is renamed to a claim (seal removes it), so of two commands looking at once exactly one seals a folder."""
    claimed: list[tuple[Path, dict]] = []
    for run_dir in unsealed_dirs(env_dir.parent, env_dir.name) if env_dir.is_dir() else []:
        claim = run_dir / _CLAIM
        state = run_state(run_dir)
        if state == "gone":
            try:
                os.rename(run_dir / MARKER, claim)
            except OSError:  # another command claimed it first
                continue
            try:
                marker = json.loads(claim.read_text())
            except (OSError, ValueError):
                marker = {}
            claimed.append((run_dir, marker if isinstance(marker, dict) else {}))
        elif state == "unrecorded" and time.time() - last_activity(run_dir) > ORPHAN_SECONDS:
            try:
                os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except OSError:  # claimed by another command (or by one that died sealing it)
                continue
            claimed.append((run_dir, {"run_id": run_dir.name, "environment": env_dir.name}))
    return claimed


def verify_env(env_dir: Path) -> list[dict]:
    """Problems of one environment's records: [{run_id, file, problem}]; empty when all are intact."""
    problems: list[dict] = []

    def bad(run_id: str, file: str, problem: str) -> None:
        problems.append({"run_id": run_id, "file": file, "problem": problem})

    runs = [p for p in sorted(env_dir.iterdir()) if is_run_dir(p) and (p / RECORD).is_file()]
    for deleted in sorted(p for p in env_dir.iterdir() if is_run_dir(p) and (p / SIDECAR).is_file()
                          and not (p / RECORD).is_file()):
        bad(deleted.name, RECORD, "deleted after the run (its run.json.sha256 is still there)")
    hashes = {p.name: sha256_file(p / RECORD) for p in runs}
    referenced: set[str] = set()
    for run_dir in runs:
        run_id = run_dir.name
        try:
            record: dict[str, Any] = json.loads((run_dir / RECORD).read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            bad(run_id, RECORD, f"not valid JSON ({exc})")
            continue
        if not isinstance(record, dict) or "artifacts" not in record:
            bad(run_id, RECORD, "not sealed: no artifact hashes (written by an older version, or the seal was removed)")
            continue
        if record.get("run_id") != run_id:
            bad(run_id, RECORD, f"says run_id {record.get('run_id')!r} but lives in {run_id}/")
        sidecar = run_dir / SIDECAR
        if not sidecar.is_file():
            bad(run_id, SIDECAR, "missing")
        elif sidecar.read_text().split()[:1] != [hashes[run_id]]:
            bad(run_id, RECORD, f"changed after the run: its SHA-256 no longer matches {SIDECAR}")
        sealed = record["artifacts"] or {}
        actual = artifact_hashes(run_dir)
        for name in sorted(set(sealed) | set(actual)):
            if name not in actual:
                bad(run_id, name, "deleted after the run")
            elif name not in sealed:
                bad(run_id, name, "added after the run")
            elif sealed[name] != actual[name]:
                bad(run_id, name, "changed after the run")
        previous = record.get("previous")
        if previous:
            referenced.add(previous["run_id"])
            if previous["run_id"] not in hashes:
                bad(run_id, RECORD, f"its previous record {previous['run_id']} is missing (deleted?)")
            elif hashes[previous["run_id"]] != previous["sha256"]:
                bad(previous["run_id"], RECORD,
                    f"changed after the run: its SHA-256 no longer matches the one recorded by {run_id}")
    return problems


def verify(root: Path, env: str | None = None) -> list[dict]:
    problems = []
    for env_dir in _env_dirs(root, env):
        if env_dir.is_dir():
            problems += [{"environment": env_dir.name, **p} for p in verify_env(env_dir)]
    return problems


def parse_s3_url(url: str) -> tuple[str, str]:
    if not url.startswith("s3://") or not url[5:].split("/", 1)[0]:
        raise ValueError(f"{url!r} is not an s3://bucket[/prefix] URL")
    bucket, _, prefix = url[5:].partition("/")
    return bucket, prefix.strip("/")


def push(s3: Any, root: Path, url: str, env: str | None = None) -> list[str]:
    """Upload every file of every run directory to s3://bucket/prefix/<env>/<run-id>/...; returns the keys.

    Objects already there with the same SHA-256 (kept in their metadata) are not uploaded again.
    """
    bucket, prefix = parse_s3_url(url)
    uploaded = []
    for run_dir in run_dirs(root, env):
        base = f"{run_dir.parent.name}/{run_dir.name}"
        for path in sorted(run_dir.rglob("*")):
            if not path.is_file():
                continue
            key = "/".join(part for part in (prefix, base, path.relative_to(run_dir).as_posix()) if part)
            digest = sha256_file(path)
            try:
                head = s3.head_object(Bucket=bucket, Key=key)
                if head.get("Metadata", {}).get("sha256") == digest:
                    continue
            except s3.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                    raise
            s3.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {"sha256": digest}})
            uploaded.append(key)
    return uploaded
