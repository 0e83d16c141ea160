"""One benchmark sandbox in its own process (moto's state is process wide): seeded, plain or AWS-like.

    python benchmarks/sandbox_proc.py STATE_FILE PARAMS [--aws-like [--scale F]]

--aws-like starts it with the sandbox's whole AWS-like profile (lib/sandbox/profile.py: 80 ms a call, AWS's
transition delays and API Gateway's quotas, the delays and quota periods times F). Writes STATE_FILE ({"pid",
"endpoint", "env"}, as `runbook sandbox` announces itself) once it serves, then runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from vpclink_runbooks import sandbox_link
from vpclink_runbooks.params import load_params
from vpclink_runbooks.sandbox.profile import Profile
from vpclink_runbooks.sandbox.server import Delays, start_sandbox


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("state_file", type=Path)
    parser.add_argument("params")
    parser.add_argument("--aws-like", action="store_true", help="the sandbox's AWS-like profile (profile.py)")
    parser.add_argument("--scale", type=float, default=1.0, help="with --aws-like: delays and quota periods x F")
    args = parser.parse_args()
    params = load_params(args.params)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # the harness starts this process without RUNBOOK_SANDBOX_PROFILE, so the plain sandbox stays plain
    options = {"profile": Profile(scale=args.scale)} if args.aws_like else {"delays": Delays()}
    sandbox = start_sandbox(account_id=params.account_id, region=params.region,
                            world=sandbox_link.world_spec_for(params), **options)
    tmp = args.state_file.with_suffix(".tmp")
    sandbox_link.announce(sandbox, tmp)
    tmp.rename(args.state_file)
    try:
        stop.wait()
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
