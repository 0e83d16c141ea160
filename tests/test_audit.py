"""Audit records: what run.json holds, the seal (artifact hashes + chain), `runbook runs --verify` and `--push`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vpclink_runbooks.cli import main
from vpclink_runbooks.params import load_params
from vpclink_runbooks.run import audit
from vpclink_runbooks.run.runner import run

from .conftest import ROOT

pytestmark = pytest.mark.notebooks

LOCAL = str(ROOT / "params" / "local.yaml")


def fake_run(root: Path, run_id: str, files: dict[str, str], env: str = "dev") -> Path:
    """A run directory written the way the runner writes one: files first, then the seal."""
    run_dir = root / env / run_id
    run_dir.mkdir(parents=True)
    for name, text in files.items():
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_text(text)
    audit.seal(run_dir, {"run_id": run_id, "environment": env, "command": "plan", "status": "succeeded",
                         "changes": [], "checks": []})
    return run_dir


@pytest.fixture
def three_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNBOOK_RUNS_DIR", str(tmp_path))
    dirs = [fake_run(tmp_path, f"20261129T10000{i}Z-aaaaa{i}", {"00_inspect.ipynb": f'{{"n": {i}}}',
                                                               "index.html": "<p>run</p>", "calls.jsonl": ""})
            for i in range(3)]
    return tmp_path, dirs


def test_the_seal_hashes_every_artifact_and_chains_to_the_previous_record(three_runs):
    _, dirs = three_runs
    records = [json.loads((d / "run.json").read_text()) for d in dirs]
    assert set(records[0]["artifacts"]) == {"00_inspect.ipynb", "index.html", "calls.jsonl"}
    assert records[0]["artifacts"]["index.html"] == audit.sha256_file(dirs[0] / "index.html")
    assert records[0]["previous"] is None
    for earlier, later, record in zip(dirs, dirs[1:], records[1:], strict=False):
        assert record["previous"] == {"run_id": earlier.name, "sha256": audit.sha256_file(earlier / "run.json")}
        assert later.name == record["run_id"]
    sidecar = (dirs[2] / "run.json.sha256").read_text().split()
    assert sidecar == [audit.sha256_file(dirs[2] / "run.json"), "run.json"]
    assert audit.verify(three_runs[0]) == []


def test_runs_verify_exits_0_when_every_record_is_intact(three_runs, capsys):
    assert main(["runs", "--verify"]) == 0
    assert main(["runs", "dev", "--verify"]) == 0
    assert "3 run record(s) intact" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["00_inspect.ipynb", "index.html", "calls.jsonl", "run.json"])
def test_editing_any_byte_of_an_old_record_is_detected(three_runs, capsys, name):
    _, dirs = three_runs
    target = dirs[0] / name
    data = bytearray(target.read_bytes() or b" ")
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    assert main(["runs", "--verify"]) == 1
    out, err = capsys.readouterr()
    assert f"TAMPERED dev/{dirs[0].name}  {name}: changed after the run" in out
    assert f"TAMPERED dev/{dirs[1].name}" not in out and f"TAMPERED dev/{dirs[2].name}" not in out
    assert f"1 of 3 run record(s) changed after the fact: dev/{dirs[0].name}" in err


def test_a_rewritten_record_with_recomputed_hashes_is_still_caught_by_the_next_record(three_runs, capsys):
    """Forging run.json and its own checksum does not help: the next record holds the old hash."""
    _, dirs = three_runs
    (dirs[1] / "00_inspect.ipynb").write_text('{"n": "forged"}')
    record = json.loads((dirs[1] / "run.json").read_text())
    record["status"] = "failed"
    del record["artifacts"], record["previous"]
    audit.seal(dirs[1], record)  # re-seal in place: artifacts and the sidecar match again
    problems = audit.verify(three_runs[0])
    assert [(p["run_id"], p["file"]) for p in problems] == [(dirs[1].name, "run.json")]
    assert "recorded by " + dirs[2].name in problems[0]["problem"]
    assert main(["runs", "--verify"]) == 1


def test_deleted_added_and_removed_records_are_detected(three_runs, capsys):
    root, dirs = three_runs
    (dirs[2] / "extra.txt").write_text("slipped in")
    (dirs[2] / "index.html").unlink()
    for path in dirs[1].iterdir():
        path.unlink()
    dirs[1].rmdir()
    problems = {(p["run_id"], p["file"], p["problem"].split(" (")[0]) for p in audit.verify(root)}
    assert (dirs[2].name, "extra.txt", "added after the run") in problems
    assert (dirs[2].name, "index.html", "deleted after the run") in problems
    assert (dirs[2].name, "run.json", f"its previous record {dirs[1].name} is missing") in problems
    unsealed = fake_run(root, "20261129T110000Z-bbbbbb", {})
    (unsealed / "run.json").write_text(json.dumps({"run_id": unsealed.name}))
    assert any(p["run_id"] == unsealed.name and "not sealed" in p["problem"] for p in audit.verify(root))


def test_push_refuses_records_that_fail_verification(three_runs, capsys):
    _, dirs = three_runs
    (dirs[0] / "index.html").write_text("edited")
    assert main(["runs", "--push", "s3://nowhere/prefix"]) == 1
    assert "not pushing" in capsys.readouterr().err


# --- on the sandbox ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plan_runs(sandbox, tmp_path_factory):
    """Two plans and a verify of local, in a runs folder of their own."""
    import os

    root = tmp_path_factory.mktemp("audit-runs")
    saved = os.environ["RUNBOOK_RUNS_DIR"]
    os.environ["RUNBOOK_RUNS_DIR"] = str(root)
    try:
        results = [run("plan", LOCAL), run("plan", LOCAL), run("verify", LOCAL)]
    finally:
        os.environ["RUNBOOK_RUNS_DIR"] = saved
    return root, results


def test_run_json_records_who_where_what_code_and_parameters(sandbox, plan_runs):
    _, results = plan_runs
    assert results[0].exit_code == 0
    rec = json.loads((results[0].run_dir / "run.json").read_text())
    params = load_params(LOCAL)
    assert rec["account"] == "123456789012" and rec["caller_arn"].startswith("arn:aws:")
    assert rec["region"] == "eu-west-2" and rec["endpoint"] == sandbox.endpoint
    assert rec["code_version"] and isinstance(rec["code_clean"], bool)
    assert rec["params"] == params.model_dump(mode="json") and rec["params_sha256"] == params.sha256()
    assert rec["started_at"] <= rec["finished_at"]
    assert rec["changes"] == [] and rec["failed_changes"] == []
    expected = {"00_inspect.ipynb", "00_inspect.html", "10_nlb.ipynb", "40_api.html", "calls.jsonl", "plan.jsonl",
                "index.html"}
    assert expected <= set(rec["artifacts"])
    assert "run.json" not in rec["artifacts"]


def test_the_records_of_an_environment_form_a_chain_and_verify(sandbox, plan_runs, monkeypatch, capsys):
    root, results = plan_runs
    records = [json.loads((r.run_dir / "run.json").read_text()) for r in results]
    assert records[0]["previous"] is None
    assert records[1]["previous"]["run_id"] == records[0]["run_id"]
    assert records[2]["previous"] == {"run_id": records[1]["run_id"],
                                      "sha256": audit.sha256_file(results[1].run_dir / "run.json")}
    monkeypatch.setenv("RUNBOOK_RUNS_DIR", str(root))
    assert main(["runs", "--verify"]) == 0
    assert main(["runs", "local"]) == 0
    out = capsys.readouterr().out
    assert all(r["run_id"] in out for r in records)


def test_push_uploads_every_run_folder_to_s3_on_the_sandbox(sandbox, plan_runs, monkeypatch, capsys):
    root, results = plan_runs
    monkeypatch.setenv("RUNBOOK_RUNS_DIR", str(root))
    s3 = sandbox.session("eu-west-2").client("s3")
    s3.create_bucket(Bucket="audit-records", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
    assert main(["runs", "local", "--push", "s3://audit-records/runbooks"]) == 0
    assert "pushed" in capsys.readouterr().out
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="audit-records")["Contents"]}
    for result in results:
        for path in result.run_dir.iterdir():
            key = f"runbooks/local/{result.run_dir.name}/{path.name}"
            assert key in keys
            assert s3.get_object(Bucket="audit-records", Key=key)["Body"].read() == path.read_bytes()
    # a second push uploads nothing new
    assert main(["runs", "local", "--push", "s3://audit-records/runbooks"]) == 0
    assert "pushed 0 file(s) of 3 run record(s)" in capsys.readouterr().out


def test_tampering_with_a_real_executed_notebook_is_detected(sandbox, plan_runs, monkeypatch, capsys, tmp_path):
    import shutil

    root, results = plan_runs
    copy = tmp_path / "runs"
    shutil.copytree(root, copy)
    monkeypatch.setenv("RUNBOOK_RUNS_DIR", str(copy))
    notebook = copy / "local" / results[0].run_dir.name / "10_nlb.ipynb"
    notebook.write_text(notebook.read_text().replace("plan", "PLAN", 1))
    assert main(["runs", "local", "--verify"]) == 1
    assert f"TAMPERED local/{results[0].run_dir.name}  10_nlb.ipynb: changed after the run" in capsys.readouterr().out
