"""The audit pages of a real apply run, opened in headless Chromium with the network cut off: the diagram and
the tables render from the page alone, and nothing tries to reach the network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vpclink_runbooks.run.runner import run as run_command

from .chromium import browser, screenshot_path
from .conftest import ROOT

pytestmark = pytest.mark.notebooks

# tqdm's bar at 0%: "...:   0%|          |" is what a wait frozen before its first update leaves behind.
STUCK_AT_ZERO = " 0%|"


@pytest.fixture(scope="module")
def apply_run(sandbox):
    result = run_command("apply", str(ROOT / "params" / "local.yaml"))
    assert result.exit_code == 0, result.record
    return result.run_dir


def _open_offline(context, path: Path):
    """Open a file page and return (page, every URL it requested that was not the file system)."""
    requested: list[str] = []
    page = context.new_page()
    page.on("request", lambda request: requested.append(request.url))
    page.goto(path.as_uri(), wait_until="load", timeout=60_000)
    page.wait_for_load_state("networkidle", timeout=30_000)
    return page, [url for url in requested if not url.startswith(("file:", "data:", "about:", "blob:"))]


def test_executed_notebook_pages_render_offline(apply_run):
    pages = {name: apply_run / f"{name}.html" for name in ("00_inspect", "50_verify")}
    assert all(path.exists() for path in pages.values()), sorted(p.name for p in apply_run.iterdir())
    with browser(offline=True) as context:
        for name, path in pages.items():
            page, remote = _open_offline(context, path)
            assert remote == [], f"{path.name} tried to load {remote}"
            diagram = page.locator(".jp-OutputArea-output svg[role=img]").first
            diagram.wait_for(state="visible", timeout=30_000)
            box = diagram.bounding_box()
            assert box and box["width"] > 300 and box["height"] > 100, box
            assert diagram.locator("g.hop").count() >= 5
            tables = page.locator(".jp-OutputArea-output table")
            assert tables.count() >= 2
            headers = " ".join(page.locator(".jp-OutputArea-output table th").all_inner_texts())
            expected = {"00_inspect": ["severity", "finding", "fix"], "50_verify": ["hop", "status", "remedy"]}
            assert all(word in headers for word in expected[name]), headers
            if name == "50_verify":
                # The failure colours come with the page: a passing check's cell is green.
                cell = page.locator(".jp-OutputArea-output table td", has_text="pass").first
                assert "rgb(19, 115, 51)" in cell.evaluate("e => getComputedStyle(e).color")
            assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                                has_text="Traceback").count() == 0
            page.screenshot(path=str(screenshot_path(f"page-{name}.png")), full_page=True)
            page.close()


def test_run_index_links_every_page_and_renders_offline(apply_run):
    with browser(offline=True) as context:
        page, remote = _open_offline(context, apply_run / "index.html")
        assert remote == [], remote
        assert page.locator("h1").inner_text().startswith("Run ")
        links = page.locator("a[href$='.html']").evaluate_all("links => links.map(a => a.getAttribute('href'))")
        steps = [step["notebook"] for step in json.loads((apply_run / "run.json").read_text())["steps"]]
        assert sorted(links) == sorted(Path(nb).with_suffix(".html").name for nb in steps)
        assert all((apply_run / link).exists() for link in links)
        page.locator("a[href='50_verify.html']").click()
        page.wait_for_url("**/50_verify.html")
        page.locator(".jp-OutputArea-output svg[role=img]").first.wait_for(state="visible")


def test_no_executed_notebook_keeps_a_progress_bar_at_zero(apply_run):
    notebooks = sorted(apply_run.glob("*.ipynb"))
    assert len(notebooks) == 6, [p.name for p in notebooks]
    waits = 0
    for path in notebooks:
        for cell in json.loads(path.read_text())["cells"]:
            shown = json.dumps(cell.get("outputs", []), ensure_ascii=False)
            assert STUCK_AT_ZERO not in shown, f"{path.name}: a progress bar stuck at 0%: {shown[:500]}"
            if cell["cell_type"] == "code" and ".wait_" in "".join(cell["source"]):
                waits += 1
                assert "100%" in shown, f"{path.name}: a wait without its final state: {shown[:500]}"
    assert waits >= 4, "apply waits for the NLB, the VPC link, the service and the targets"
