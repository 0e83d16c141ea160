"""The guided experience as a person has it: JupyterLab on loopback over a sandbox, driven in headless Chromium.
The inspect and verify notebooks run through the UI (Run > Run All Cells) and must finish with no error output,
the path diagram and their tables on screen, and the kernel idle. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from vpclink_runbooks.run.runner import NOTEBOOKS
from vpclink_runbooks.run.runner import run as run_command

from .chromium import browser, require_chromium, screenshot_path, wait_for_jupyter
from .conftest import ROOT

pytestmark = pytest.mark.notebooks

STDERR = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
# Each notebook: the code a cell must contain, and the column headers of the table it must show.
TABLES = {
    "00_inspect.ipynb": ("styled(findings)", ["severity", "finding", "detail", "fix"]),
    "50_verify.ipynb": ("styled(checks.table(results))", ["id", "hop", "status", "detail", "remedy"]),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(sandbox, tmp_path_factory):
    """JupyterLab (token auth, loopback) over copies of the notebooks, after an apply so verify has a chain."""
    require_chromium()  # fail before the slow part when the browser is missing
    result = run_command("apply", str(ROOT / "params" / "local.yaml"))
    assert result.exit_code == 0, result.record
    work = tmp_path_factory.mktemp("lab")
    shutil.copytree(NOTEBOOKS, work / "notebooks")  # the parameters cell reads ../params/local.yaml
    shutil.copytree(ROOT / "params", work / "params")
    home = work / "home"
    # A fresh settings folder, as `runbook lab` has: no news, no update check, no stale workspace. Every cell
    # stays attached to the page (no windowing), so the whole notebook can be inspected and photographed.
    settings = {
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "notebook-extension/tracker": {"windowingMode": "none"},
    }
    for name, value in settings.items():
        path = home / "settings" / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    token, port = uuid.uuid4().hex, _free_port()
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"))
    log = (work / "lab.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--notebook-dir={work / 'notebooks'}",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
         f"--IdentityProvider.token={token}", "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
         *(["--allow-root"] if os.geteuid() == 0 else [])],
        env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_jupyter(base, token, server, work / "lab.log")
        yield {"base": base, "token": token, "dir": work / "notebooks", "log": work / "lab.log"}
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture(scope="module")
def chromium():
    with browser() as context:
        context.set_default_timeout(60_000)
        yield context


# The status bar's kernel item, e.g. "Python 3 (ipykernel) | Idle". The toolbar's execution indicator says
# "idle" before the kernel is even connected, so readiness is read here.
KERNEL_IDLE = """() => [...document.querySelectorAll('.jp-StatusBar-TextItem')]
    .some(e => /^(?!No Kernel).+ \\| Idle$/.test(e.textContent.trim()))"""
STARTED = """() => [...document.querySelectorAll(
        '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt')]
    .some(p => /^\\[(\\*|\\d+)\\]:$/.test(p.textContent.trim()))"""
# Every input prompt shows its execution count ("[7]:"), none is queued ("[*]:"), and the kernel is idle.
FINISHED = """n => {
    const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
    const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')];
    const done = prompts.length === n && prompts.every(p => /^\\[\\d+\\]:$/.test(p.textContent.trim()));
    return done && panel.querySelector('.jp-Notebook-ExecutionIndicator')?.dataset.status === 'idle'
        && (""" + KERNEL_IDLE + """)();
}"""


def _run_all_cells(page, expected: int) -> None:
    """Wait for every cell and the kernel, then Run > Run All Cells and wait until every cell has run."""
    page.wait_for_function(
        "n => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-CodeCell')"
        ".length === n", arg=expected, timeout=90_000, polling=250)
    page.wait_for_function(KERNEL_IDLE, timeout=90_000, polling=250)
    for attempt in range(2):
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-content .lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        try:
            page.wait_for_function(STARTED, timeout=20_000, polling=250)
            break
        except PlaywrightTimeout:
            if attempt:
                raise
    page.wait_for_function(FINISHED, arg=expected, timeout=150_000, polling=250)


def _photograph(page, name: str) -> Path:
    """Hide the file browser and make the window tall enough for the whole notebook: one picture of every output."""
    page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current").click()  # collapses the left panel
    content = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-viewport"
    height = page.locator(content).evaluate("e => e.getBoundingClientRect().height")
    page.set_viewport_size({"width": 1280, "height": min(int(height) + 240, 16_000)})
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer").evaluate("e => e.scrollTo(0, 0)")
    page.wait_for_function(
        "() => document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer').scrollTop === 0")
    path = screenshot_path(f"browser-{Path(name).stem}.png")
    page.screenshot(path=str(path), animations="disabled")
    return path


@pytest.mark.parametrize("name", list(TABLES))
def test_notebook_runs_in_jupyterlab(lab, chromium, name):
    page = chromium.new_page()
    console_errors: list[str] = []
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    try:
        # A workspace of its own per notebook, reset: exactly one notebook tab, nothing restored.
        workspace = Path(name).stem
        page.goto(f"{lab['base']}/lab/workspaces/{workspace}/tree/{name}?reset&token={lab['token']}",
                  wait_until="domcontentloaded")
        code_cells = sum(c.cell_type == "code" for c in nbformat.read(lab["dir"] / name, as_version=4).cells)
        _run_all_cells(page, code_cells)
        panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")

        errors = panel.locator(f"{STDERR}, .jp-OutputArea-output.jp-mod-error")
        assert errors.count() == 0, f"{name} shows error output:\n" + "\n---\n".join(errors.all_inner_texts())

        diagram = panel.locator(".jp-OutputArea-output .vpclink-path-diagram svg[role=img]")
        diagram.wait_for(state="visible")
        box = diagram.bounding_box()
        assert box and box["width"] > 300 and box["height"] > 100, box
        assert diagram.locator("g.hop").count() >= 5

        code, headers = TABLES[name]
        cell = panel.locator(".jp-CodeCell").filter(has=page.locator(".jp-InputArea-editor", has_text=code))
        assert cell.count() == 1, f"no single cell running {code}"
        table = cell.locator(".jp-OutputArea-output table")
        table.wait_for(state="visible")
        shown = [text.strip() for text in table.locator("thead th").all_inner_texts()]
        assert all(header in shown for header in headers), shown
        if name == "50_verify.ipynb":
            statuses = [t.strip() for t in table.locator("tbody tr td:nth-child(3)").all_inner_texts()]
            assert statuses and "fail" not in statuses, statuses
            # The colours survive the notebook's sanitiser: a passing check is green.
            passed = table.locator("tbody td", has_text=re.compile(r"^pass$")).first
            assert passed.evaluate("e => getComputedStyle(e).color") == "rgb(19, 115, 51)"

        assert panel.locator(".jp-Notebook-ExecutionIndicator").get_attribute("data-status") == "idle"
        assert page.evaluate(KERNEL_IDLE), page.locator(".jp-StatusBar-TextItem").all_inner_texts()
        _photograph(page, name)
        assert console_errors == [], console_errors
    except Exception:
        page.screenshot(path=str(screenshot_path(f"browser-{Path(name).stem}-failed.png")))
        raise
    finally:
        page.close()
