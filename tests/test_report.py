"""Tests for styled tables and the offline HTML pages."""

from html.parser import HTMLParser

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from vpclink_runbooks.present.report import (
    RemoteAssetError,
    export_html,
    remote_references,
    styled,
    write_index,
)

pytestmark = pytest.mark.notebooks


class Tags(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self, page: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {name: value or "" for name, value in attrs}))

    def handle_data(self, data):
        self.text.append(data)


class Cells(HTMLParser):
    """(attributes, text) of every <td>."""

    def __init__(self, page: str):
        super().__init__()
        self.cells: list[tuple[dict[str, str], str]] = []
        self._open: dict[str, str] | None = None
        self._text = ""
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        if tag == "td":
            self._open, self._text = {name: value or "" for name, value in attrs}, ""

    def handle_data(self, data):
        if self._open is not None:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "td" and self._open is not None:
            self.cells.append((self._open, self._text.strip()))
            self._open = None

    def style_of(self, text: str) -> str:
        return " ".join(attrs.get("style", "") for attrs, cell in self.cells if cell == text)


def remote_tags(page: str) -> list[tuple[str, str]]:
    """(tag, url) for tags that would make a browser fetch from the network."""
    remote = []
    for tag, attrs in Tags(page).tags:
        for name, value in attrs.items():
            fetched = name in ("src", "srcset") or (tag == "link" and name == "href")
            if fetched and value.strip().lower().startswith(("http://", "https://", "//")):
                remote.append((tag, value))
    return remote


CHECKS = pd.DataFrame(
    {
        "id": ["nlb.active", "tg.healthy", "sg.port", "stage.deployed"],
        "hop": ["nlb", "targets", "security_group", "stage"],
        "status": ["pass", "fail", "warn", "skip"],
        "detail": ["active", "0/2 healthy <none>", "open to 0.0.0.0/0", "not checked"],
    }
)


def test_styled_colours_fail_rows_red():
    page = styled(CHECKS)._repr_html_()
    cells = Cells(page)
    fail_style = cells.style_of("fail")
    assert "#c5221f" in fail_style and "font-weight: bold" in fail_style
    # The whole failing row is shaded, inline, so sanitisers that drop <style> keep it.
    assert "#fdf1f0" in cells.style_of("tg.healthy")
    assert "#fdf1f0" not in cells.style_of("nlb.active")
    assert "#137333" in cells.style_of("pass")
    assert "#b06000" in cells.style_of("warn")
    assert "#5f6368" in cells.style_of("skip")
    assert "&lt;none&gt;" in page
    assert "<th" in page and "row_heading" not in page  # index hidden


def test_styled_colours_action_and_severity():
    frame = pd.DataFrame(
        {
            "resource": ["nlb", "tg", "old", "sg", "svc"],
            "action": ["create", "update", "delete", "none", "replace"],
            "severity": ["info", "warning", "error", "info", "info"],
        }
    )
    cells = Cells(styled(frame).to_html())
    assert "#137333" in cells.style_of("create")
    assert "#c5221f" in cells.style_of("delete")
    assert "#c5221f" in cells.style_of("error") and "font-weight: bold" in cells.style_of("error")
    assert cells.style_of("create") != cells.style_of("none") != cells.style_of("update")


def test_styled_empty_frames_and_plain_text():
    for frame in (pd.DataFrame(), pd.DataFrame(columns=["id", "status", "action"])):
        styler = styled(frame)
        assert "<table" in styler._repr_html_()
        assert "no rows" in repr(styler)
    text = repr(styled(CHECKS))
    assert "tg.healthy" in text and "fail" in text and "Styler" not in text


def test_styled_is_deterministic():
    assert styled(CHECKS).to_html() == styled(CHECKS.copy()).to_html()


@pytest.fixture(scope="module")
def executed_notebook(tmp_path_factory):
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [
        nbformat.v4.new_markdown_cell(
            "# Verify\nSee [the AWS docs](https://docs.aws.amazon.com/) and $x^2$."
        ),
        nbformat.v4.new_code_cell(
            "import pandas as pd\n"
            "from vpclink_runbooks.present.diagram import Hop, Target, path_diagram\n"
            "from vpclink_runbooks.present.report import styled"
        ),
        nbformat.v4.new_code_cell(
            "path_diagram([Hop('nlb', 'Load balancer', 'orders-nlb', status='pass'),\n"
            "              Hop('target_group', 'Target group', 'orders-tg', status='fail')],\n"
            "             [Target('eu-west-2a', 'i-0abc1234567890def', '10.0.1.10', 10000, 8080, 'fail')],\n"
            "             highlight='target_group')"
        ),
        nbformat.v4.new_code_cell(
            "styled(pd.DataFrame({'id': ['tg.healthy'], 'status': ['fail'], 'detail': ['0/1 healthy']}))"
        ),
    ]
    NotebookClient(notebook, timeout=60, kernel_name="python3").execute()
    path = tmp_path_factory.mktemp("nb") / "20_verify.ipynb"
    nbformat.write(notebook, path)
    return path


def test_export_html_is_self_contained(executed_notebook, tmp_path):
    page_path = export_html(executed_notebook, tmp_path / "out" / "verify.html")
    assert page_path == tmp_path / "out" / "verify.html"
    page = page_path.read_text(encoding="utf-8")
    assert "<svg" in page and "i-0abc1234567890def" in page
    assert "tg.healthy" in page and "#c5221f" in page
    assert remote_tags(page) == []
    assert remote_references(page) == []
    assert [attrs for tag, attrs in Tags(page).tags if tag == "script" and attrs.get("src")] == []
    # Plain links in the content are fine.
    assert 'href="https://docs.aws.amazon.com/"' in page


def test_export_html_defaults_next_to_the_notebook(executed_notebook):
    page_path = export_html(executed_notebook)
    assert page_path == executed_notebook.with_suffix(".html")
    assert page_path.exists()


def test_export_html_refuses_remote_assets(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("![logo](https://example.com/logo.png)")]
    path = tmp_path / "remote.ipynb"
    nbformat.write(notebook, path)
    with pytest.raises(RemoteAssetError, match="example.com/logo.png"):
        export_html(path)
    assert not path.with_suffix(".html").exists()


def test_remote_references_ignores_content_links():
    page = (
        '<a href="https://example.com">x</a><script src="https://cdn.example/x.js"></script>'
        '<link rel="stylesheet" href="//fonts.example/css"><img src="data:image/png;base64,AAAA">'
        "<style>@import url('https://fonts.example/f.css'); .x { background: url(data:a) }</style>"
    )
    found = remote_references(page)
    assert "https://cdn.example/x.js" in found
    assert "//fonts.example/css" in found
    assert any("fonts.example/f.css" in reference for reference in found)
    assert len(found) == 3


RUN = {
    "run_id": "20250601T101500Z-1a2b",
    "environment": "dev",
    "command": "apply",
    "status": "failed",
    "started_at": "2025-06-01T10:15:00Z",
    "finished_at": "2025-06-01T10:19:12Z",
    "account": "123456789012",
    "caller_arn": "arn:aws:sts::123456789012:assumed-role/ops/alice",
    "region": "eu-west-2",
    "steps": [
        {"notebook": "00_inspect.ipynb", "status": "succeeded", "seconds": 3.2},
        {"notebook": "10_nlb.ipynb", "status": "succeeded", "seconds": 12.0},
        {"notebook": "50_verify.ipynb", "status": "failed", "seconds": 4.5},
    ],
    "changes": [{"service": "elbv2", "operation": "CreateLoadBalancer", "resource": "orders-nlb"}],
    "checks": [
        {"id": "nlb.active", "hop": "nlb", "status": "pass", "detail": "active", "remedy": ""},
        {"id": "tg.healthy", "hop": "targets", "status": "fail", "detail": "0/2 <healthy>",
         "remedy": "allow TCP 10000 from the NLB subnets"},
    ],
}


def test_write_index_links_every_step(tmp_path):
    index = write_index(tmp_path / "run", RUN)
    assert index == tmp_path / "run" / "index.html"
    page = index.read_text(encoding="utf-8")
    hrefs = [attrs["href"] for tag, attrs in Tags(page).tags if tag == "a"]
    for step in RUN["steps"]:
        assert step["notebook"].replace(".ipynb", ".html") in hrefs
    assert all("://" not in href for href in hrefs)
    assert remote_tags(page) == []
    assert "arn:aws:sts::123456789012:assumed-role/ops/alice" in page
    assert "CreateLoadBalancer" in page
    assert "0/2 &lt;healthy&gt;" in page
    cells = Cells(page)
    assert "#c5221f" in cells.style_of("fail")
    assert "allow TCP 10000 from the NLB subnets" in page
    assert "FAILED" in page


def test_write_index_with_an_empty_run(tmp_path):
    page = write_index(tmp_path, {"run_id": "r1", "status": "refused"}).read_text(encoding="utf-8")
    assert "REFUSED" in page and "none" in page


def test_remote_asset_error_is_a_runbook_error():
    from vpclink_runbooks.errors import RunbookError

    assert issubclass(RemoteAssetError, RunbookError) and issubclass(RemoteAssetError, ValueError)


def test_write_index_shows_the_plan_rows_and_who_ran_where(tmp_path):
    run = {**RUN, "command": "plan", "endpoint": None, "endpoint_kind": "aws", "region": "eu-west-1",
           "user": "alice", "host": "ops-box", "pid": 4242, "changes": [],
           "plan": [{"resource": "nlb orders-nlb", "action": "create", "current": "-", "desired": "internal",
                     "why": "missing"},
                    {"resource": "vpc link orders-link", "action": "none", "current": "AVAILABLE",
                     "desired": "AVAILABLE", "why": "in place"}]}
    page = write_index(tmp_path, run).read_text(encoding="utf-8")
    assert "<h2>Plan</h2>" in page and "nlb orders-nlb" in page and "vpc link orders-link" in page
    assert "1 planned change(s) of 2 plan row(s)" in page
    assert "#137333" in Cells(page).style_of("create")
    assert "AWS (standard endpoints, region eu-west-1)" in page and "alice" in page and "ops-box" in page
    sandbox = write_index(tmp_path, {**run, "endpoint": "http://127.0.0.1:5000", "endpoint_kind": "sandbox"})
    assert "sandbox (embedded AWS emulator) at http://127.0.0.1:5000" in sandbox.read_text(encoding="utf-8")
