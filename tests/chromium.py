"""Headless Debian Chromium driven by Playwright, for the browser tests. Nothing here downloads a browser:
`make test` installs Debian's `chromium` package, and a missing browser fails the test instead of skipping it."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .conftest import ROOT

CHROMIUM = os.environ.get("RUNBOOK_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
# Without the background-networking flags Chromium keeps trying to reach Google's hosts.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]
# Every connection that is not to loopback goes to a closed port: the page cannot reach the network.
NO_NETWORK = ["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]


def require_chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: the browser tests need Debian's chromium package "
                    "(`make test` installs it with apt; or run `apt-get install chromium`)", pytrace=False)
    return CHROMIUM


@contextmanager
def browser(*, offline: bool = False) -> Iterator:
    """A headless Chromium with a fresh profile; `offline` also routes everything but loopback nowhere."""
    from playwright.sync_api import sync_playwright

    executable = require_chromium()
    with tempfile.TemporaryDirectory(prefix="runbook-chromium-") as profile, sync_playwright() as pw:
        # launch_persistent_context is how Playwright takes a --user-data-dir of our own.
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=FLAGS + (NO_NETWORK if offline else []),
            viewport={"width": 1280, "height": 900}, offline=offline, timeout=60_000)
        try:
            yield context
        finally:
            context.close()


def screenshot_path(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


def wait_for_jupyter(base: str, token: str, server: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    """Until JupyterLab at base answers /api/status; fails with the end of its log when it exits or never answers."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"JupyterLab did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
