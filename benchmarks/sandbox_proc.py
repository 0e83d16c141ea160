"""One benchmark sandbox in its own process (moto's state is process wide): seeded, with the given delays.

    python benchmarks/sandbox_proc.py STATE_FILE PARAMS [--aws-like]

Writes STATE_FILE ({"pid", "endpoint", "env"}, as `runbook sandbox` announces itself) once it serves, then runs
until SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from vpclink_runbooks import sandbox_link
from vpclink_runbooks.params import load_params
from vpclink_runbooks.sandbox.server import AWS_LIKE, Delays, start_sandbox


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("state_file", type=Path)
    parser.add_argument("params")
    parser.add_argument("--aws-like", action="store_true", help="server.AWS_LIKE transition delays")
    args = parser.parse_args()
    params = load_params(args.params)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sandbox = start_sandbox(account_id=params.account_id, region=params.region,
                            delays=AWS_LIKE if args.aws_like else Delays(),
                            world=sandbox_link.world_spec_for(params))
    tmp = args.state_file.with_suffix(".tmp")
    sandbox_link.announce(sandbox, tmp)
    tmp.rename(args.state_file)
    try:
        stop.wait()
    finally:
        sandbox.stop()


if __name__ == "__main__":
    main()
