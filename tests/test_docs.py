"""The documentation stands on its own: README.md, docs/*.md and benchmarks/README.md link only files that
exist inside the repository, README links every docs page, and docs/failure-modes.md names every check id the
check registry declares. Nothing here tests wording."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import ROOT

# Inline links and images [text](target "title"), reference definitions [id]: target, and HTML href/src.
INLINE = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.MULTILINE)
HTML = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']""")
# A path written in backticks or plain text that climbs out of its folder: `../x`, ../../y.
CLIMBING = re.compile(r"(?<![\w./-])((?:\.\./)+[\w.@+-][\w./@+-]*)")
URL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, file:, ...
WEB = ("http://", "https://", "mailto:")


def doc_files(root: Path = ROOT) -> list[Path]:
    return sorted([root / "README.md", *(root / "docs").glob("*.md"), root / "benchmarks" / "README.md"])


# Code is not a link: fenced blocks and code spans (a regex `[a-z](x)` in a table is text).
CODE = re.compile(r"^```.*?^```|(`+)(?:(?!\1).)+?\1", re.MULTILINE | re.DOTALL)


def link_targets(text: str) -> list[str]:
    text = CODE.sub("", text)
    return INLINE.findall(text) + REFERENCE.findall(text) + HTML.findall(text)


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """Each link of `path` that leaves the repository or names no existing file, with the reason."""
    text = path.read_text()
    problems = []
    for target in link_targets(text):
        if target.lower().startswith(WEB):
            continue
        if URL.match(target):
            problems.append(f"{target}: not a web address and not a path in the repository")
            continue
        file_part = target.split("#", 1)[0].split("?", 1)[0]
        if not file_part:
            continue  # an anchor in the same page
        resolved = (root / file_part.lstrip("/")) if file_part.startswith("/") else (path.parent / file_part)
        resolved = resolved.resolve()
        if file_part.startswith("/") or not resolved.is_relative_to(root.resolve()):
            problems.append(f"{target}: outside the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file ({resolved.relative_to(root.resolve())})")
    prose = HTML.sub("", REFERENCE.sub("", INLINE.sub("", text)))
    for mention in CLIMBING.findall(prose):
        if not (path.parent / mention).resolve().is_relative_to(root.resolve()):
            problems.append(f"{mention}: names a path outside the repository")
    return problems


@pytest.mark.parametrize("path", doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_in_the_repository_and_exist(path):
    assert path.exists(), f"{path.relative_to(ROOT)} is missing"
    assert broken_links(path) == [], f"{path.relative_to(ROOT)} has links a clone cannot follow"


def test_readme_links_every_docs_page():
    readme = ROOT / "README.md"
    linked = {(readme.parent / t.split("#", 1)[0]).resolve() for t in link_targets(readme.read_text())}
    pages = sorted((ROOT / "docs").glob("*.md"))
    assert pages, "docs/ holds no page"
    missing = [p.name for p in pages if p.resolve() not in linked]
    assert missing == [], f"README.md links no docs page {missing}: add each to its list of docs"


def check_rows_gaps(text: str, declared: set[str]) -> tuple[list[str], list[str]]:
    """(declared ids with no row, rows for ids nobody declares); a check's row opens with its id: | `id` | ..."""
    rows = set(re.findall(r"^\|\s*`([^`]+)`\s*\|", text, re.MULTILINE))
    return sorted(declared - rows), sorted(rows - declared)


def test_failure_modes_names_every_declared_check():
    from vpclink_runbooks import checks

    missing, unknown = check_rows_gaps((ROOT / "docs" / "failure-modes.md").read_text(), set(checks.DECLARED))
    assert missing == [], f"docs/failure-modes.md has no row for check id(s) {missing} (| `id` | ... |)"
    assert unknown == [], f"docs/failure-modes.md has rows for check id(s) {unknown} that no check declares"


# -- the checker itself catches what it is for --

def test_checker_reports_links_out_of_the_repository_and_to_missing_files(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "real.md").write_text("# real\n")
    page = tmp_path / "README.md"
    page.write_text("See [design](../shared/DESIGN.md), [modes](../shared/reference/failure-modes.md),\n"
                    "[abs](/etc/passwd), [gone](docs/gone.md), [file](file:///tmp/x), and `../shared/STYLE.md`.\n"
                    "Fine: [real](docs/real.md#top), [aws](https://docs.aws.amazon.com/), [here](#two-commands).\n"
                    "[ref]: docs/missing.md\n")
    problems = broken_links(page, tmp_path)
    assert [p.split(":")[0] for p in problems] == [
        "../shared/DESIGN.md", "../shared/reference/failure-modes.md", "/etc/passwd", "docs/gone.md", "file",
        "docs/missing.md", "../shared/STYLE.md"]


def test_checker_resolves_links_from_the_file_that_holds_them(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("# top\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text("[up](../README.md) [same](other.md) [wrong](docs/other.md)\n")
    (tmp_path / "docs" / "other.md").write_text("")
    assert [p.split(":")[0] for p in broken_links(page, tmp_path)] == ["docs/other.md"]


def test_check_rows_finds_a_missing_and_a_stale_check_id():
    text = "| check | what |\n|---|---|\n| `mapping.exists` | gone |\n| `nlb.renamed` | old |\nsee `stage.exists`\n"
    assert check_rows_gaps(text, {"mapping.exists", "stage.exists", "listener.{port}"}) == (
        ["listener.{port}", "stage.exists"], ["nlb.renamed"])
