"""`runbook lab ENV`: JupyterLab on the notebooks, over a sandbox when params say so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def lab(args) -> int:
    from vpclink_runbooks import sandbox_link
    from vpclink_runbooks.params import load_params
    from vpclink_runbooks.run.runner import NOTEBOOKS
    from vpclink_runbooks.sandbox.server import start_sandbox

    params = load_params(args.env)
    sandbox = None
    if params.sandbox and not os.environ.get("AWS_ENDPOINT_URL") and sandbox_link.running_sandbox() is None:
        sandbox = start_sandbox(account_id=params.account_id, region=params.region,
                                world=sandbox_link.world_spec_for(params))
        sandbox_link.announce(sandbox)
        sandbox_link.export(sandbox.env())
        print(f"sandbox running at {sandbox.endpoint}")
    # A fresh settings and workspace folder: no news pop-up, no update check, no stale tabs.
    home = Path(tempfile.mkdtemp(prefix="runbook-lab-"))
    notification = home / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--notebook-dir={NOTEBOOKS}",
               "--ServerApp.ip=127.0.0.1", "--LabApp.default_url=/lab/tree/00_inspect.ipynb",
               "--LabApp.extension_manager=readonly", *(["--allow-root"] if os.geteuid() == 0 else [])]
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    try:
        return subprocess.call(command, env=env)
    except KeyboardInterrupt:
        return 0
    finally:
        if sandbox is not None:
            sandbox_link.state_file().unlink(missing_ok=True)
            sandbox.stop()
