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
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

RECORD = "run.json"
SIDECAR = "run.json.sha256"
# Files of a run directory that the seal does not cover (the record itself and its checksum).
UNSEALED = {RECORD, SIDECAR}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def code_clean(root: Path) -> bool | None:
    """Whether the work tree at root has no uncommitted changes; None when it is not a git work tree."""
    try:
        out = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True,
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
    earlier = sorted(p for p in run_dir.parent.iterdir() if p.is_dir() and p.name < run_dir.name
                     and (p / RECORD).is_file())
    if not earlier:
        return None
    last = earlier[-1]
    return {"run_id": last.name, "sha256": sha256_file(last / RECORD)}


def seal(run_dir: Path, record: dict) -> dict:
    """Write run.json with the artifact hashes and the link to the previous record, then its checksum.

    Call it last: every file written to run_dir afterwards shows up as "added after the run".
    """
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
            for p in sorted(env_dir.iterdir()) if p.is_dir() and (p / RECORD).is_file()]


def verify_env(env_dir: Path) -> list[dict]:
    """Problems of one environment's records: [{run_id, file, problem}]; empty when all are intact."""
    problems: list[dict] = []

    def bad(run_id: str, file: str, problem: str) -> None:
        problems.append({"run_id": run_id, "file": file, "problem": problem})

    runs = [p for p in sorted(env_dir.iterdir()) if p.is_dir() and (p / RECORD).is_file()]
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
