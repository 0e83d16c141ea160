"""Finding or starting the embedded sandbox for params that say `sandbox: true`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from vpclink_runbooks.aws.endpoint import (  # noqa: F401 - moved; callers keep these names
    export,
    running_sandbox,
    state_file,
    use_running_sandbox,
)
from vpclink_runbooks.params import Params


def world_spec_for(params: Params):
    from vpclink_runbooks.sandbox.ecs_tasks import ecr_image
    from vpclink_runbooks.sandbox.world import WorldSpec

    other = "users" if params.api.base_path != "users" else "accounts"
    # the world holds what the params' tasks resolve at start (ECS stops a task whose secret or image is missing)
    ssm, secrets = {}, {}
    for value_from in params.service.secrets.values():
        if ":secretsmanager:" in value_from:
            name = value_from.split(":")[6]
            secrets[name[:-7] if len(name) > 7 and name[-7] == "-" else name] = "sandbox-secret"
        else:
            name = value_from.split(":parameter", 1)[1] if value_from.startswith("arn:") else value_from
            ssm[name] = "sandbox-secret"
    ref = ecr_image(params.service.image)
    images = ([f"{ref[2]}:{ref[3] or 'latest'}"] if ref and (ref[0], ref[1]) == (params.account_id, params.region)
              else [])
    return WorldSpec(region=params.region, vpc_id=params.vpc_id, cluster=params.cluster,
                     domain_name=params.api.domain_name, other_base_path=other,
                     cluster_security_group_name=f"{params.cluster}-instances",
                     ssm_parameters=ssm, secrets=secrets, ecr_images=images)


def ensure_sandbox(params: Params):
    """For the CLI: share a running sandbox if there is one, else start one seeded for these params.

    Returns the Sandbox the caller owns (and must stop), or None when an existing one is used.
    """
    if os.environ.get("AWS_ENDPOINT_URL"):
        return None
    state = running_sandbox()
    if state is not None:
        export(state["env"])
        return None
    from vpclink_runbooks.sandbox.server import start_sandbox

    sandbox = start_sandbox(account_id=params.account_id, region=params.region, world=world_spec_for(params))
    export(sandbox.env())
    print(fresh_notice(params, sandbox.endpoint), file=sys.stderr, flush=True)
    return sandbox


def fresh_notice(params: Params, endpoint: str) -> str:
    """What a command says when it starts a sandbox of its own: the earlier runs' resources are not in it."""
    return (f"sandbox: started a fresh sandbox for {params.environment} at {endpoint}; it holds none of the "
            f"earlier runs' resources (their records in runs/{params.environment}/ describe sandboxes that are gone) "
            "and stops when this command ends. To keep one across commands, run `runbook sandbox` in another "
            "terminal.")


def announce(sandbox, path: Path | None = None) -> Path:
    path = path or state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    env = sandbox.env()
    path.write_text(json.dumps({"pid": os.getpid(), "endpoint": sandbox.endpoint, "env": env,
                                "front": getattr(sandbox, "front", None)}))
    return path
