"""Shared fixtures. moto's state is process-wide and starting a sandbox resets it, so each test module
starts its own sandbox (module scope) and modules never share emulated state."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import yaml

from vpclink_runbooks import sandbox_link
from vpclink_runbooks.params import load_params
from vpclink_runbooks.sandbox.server import Delays, start_sandbox

ROOT = Path(__file__).resolve().parent.parent
# The plain sandbox has no quotas; pacing by AWS's (DeleteRestApi 1 call per 30 s) would only slow the suite's
# many applies and destroys down. tests/test_pacing.py and the quota tests of test_profile.py turn it on.
os.environ.setdefault("RUNBOOK_PACE", "off")
FAST = Delays(nlb_provisioning=0.5, vpc_link_pending=0.5, task_start=0.2, target_healthy=0.2)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A sandbox seeded with params/local.yaml's world; AWS_ENDPOINT_URL points every kernel at it."""
    params = load_params(ROOT / "params" / "local.yaml")
    box = start_sandbox(account_id=params.account_id, region=params.region, delays=FAST,
                        world=sandbox_link.world_spec_for(params))
    saved = {k: os.environ.get(k) for k in [*box.env(), "RUNBOOK_RUNS_DIR", "RUNBOOK_SANDBOX_FILE"]}
    os.environ.update(box.env())
    os.environ["RUNBOOK_RUNS_DIR"] = str(tmp_path_factory.mktemp("runs"))
    os.environ["RUNBOOK_SANDBOX_FILE"] = str(tmp_path_factory.mktemp("state") / "none.json")
    yield box
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    box.stop()


def write_params(tmp_path: Path, base: str = "local", **changes) -> Path:
    """A params file derived from params/<base>.yaml with dotted-key changes, e.g. service__host_port=10002."""
    data = yaml.safe_load((ROOT / "params" / f"{base}.yaml").read_text())
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path = tmp_path / f"{data['environment']}-{uuid.uuid4().hex[:8]}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
