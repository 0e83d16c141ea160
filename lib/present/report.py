"""Tables that make failures stand out, and offline HTML pages of executed notebooks and runs."""

from __future__ import annotations

import hashlib
import html
import re
import threading
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import jinja2
import pandas as pd
from pandas.io.formats.style import Styler

from vpclink_runbooks.errors import RunbookError

if TYPE_CHECKING:  # nbconvert and nbformat take seconds to import; every notebook imports styled()
    from nbconvert import HTMLExporter

# Cell colours by column and value. Several spellings are accepted because run records say
# "succeeded"/"failed" where checks say "pass"/"fail".
GOOD = "background-color: #e6f4ea; color: #137333"
BAD = "background-color: #fce8e6; color: #c5221f; font-weight: bold"
WARN = "background-color: #fef7e0; color: #b06000"
QUIET = "background-color: #f1f3f4; color: #5f6368"
INFO = "background-color: #e8f0fe; color: #174ea6"
CHANGE = "background-color: #fef7e0; color: #b06000; font-weight: bold"

CELL_STYLES: dict[str, dict[str, str]] = {
    "status": {
        "pass": GOOD, "passed": GOOD, "ok": GOOD, "succeeded": GOOD, "success": GOOD,
        "fail": BAD, "failed": BAD, "error": BAD,
        "warn": WARN, "warning": WARN, "refused": WARN, "interrupted": BAD, "running": INFO,
        "skip": QUIET, "skipped": QUIET, "planned": INFO, "unknown": QUIET,
    },
    "action": {
        "create": GOOD, "update": CHANGE, "replace": BAD, "delete": BAD, "none": QUIET,
    },
    "severity": {"error": BAD, "warning": WARN, "warn": WARN, "info": INFO},
}
# The whole row of a failure gets a faint red so it is found at a glance in a long table.
FAILED_ROW = "background-color: #fdf1f0"
FAILED_VALUES = {"status": {"fail", "failed", "error"}, "severity": {"error"}}

TABLE_ATTRIBUTES = 'style="border-collapse: collapse; font-size: 0.92em"'
TABLE_STYLES = [
    {"selector": "th", "props": [("text-align", "left"), ("padding", "4px 8px"),
                                 ("border-bottom", "2px solid #9aa0a6")]},
    {"selector": "td", "props": [("padding", "3px 8px"), ("border-bottom", "1px solid #e0e0e0"),
                                 ("vertical-align", "top"), ("white-space", "pre-wrap")]},
]

# pandas puts cell colours in a <style> block keyed by element ids. Sanitisers (JupyterLab for
# untrusted notebooks, mail clients, wikis) drop <style> blocks, so each body cell also gets its
# colours as a style attribute.
_INLINE_TABLE_TEMPLATE = """{% extends "html_table.tpl" %}
{% block tbody %}
{% if exclude_styles %}{{ super() }}{% else %}
{% set inline = {} %}
{% for entry in cellstyle %}{% for selector in entry.selectors %}
{% set _ = inline.update({selector: entry.props}) %}
{% endfor %}{% endfor %}
  <tbody>
{% for r in body %}
    <tr>
{% for c in r %}{% if c.is_visible != False %}
      <{{c.type}} {%- if c.id is defined %} id="T_{{uuid}}_{{c.id}}" {%- endif %} class="{{c.class}}" \
{%- if c.id is defined and c.id in inline %} style="{% for p, v in inline[c.id] %}{{p}}: {{v}};{% endfor %}"\
{%- endif %} {{c.attributes}}>{{c.display_value}}</{{c.type}}>
{% endif %}{% endfor %}
    </tr>
{% endfor %}
  </tbody>
{% endif %}
{% endblock tbody %}
"""


class StatusStyler(Styler):
    """A Styler whose colours survive sanitising and whose text/plain form is a readable table."""

    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [jinja2.DictLoader({"inline_table.tpl": _INLINE_TABLE_TEMPLATE}), Styler.loader]
        ),
        trim_blocks=True,
    )
    template_html_table = env.get_template("inline_table.tpl")

    def __repr__(self) -> str:
        # papermill and `jupyter nbconvert --to markdown` keep text/plain; an object address is useless.
        if self.data.empty:
            columns = ", ".join(str(column) for column in self.data.columns) or "none"
            return f"(no rows; columns: {columns})"
        return self.data.to_string(index=False, na_rep="")

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(repr(self))


def styled(df: pd.DataFrame) -> Styler:
    """Colour the `status`, `action` and `severity` columns, redden failed rows and hide the index."""
    column_kinds = {column: str(column).strip().lower() for column in df.columns}
    coloured = [column for column, kind in column_kinds.items() if kind in CELL_STYLES]
    uuid = "vr_" + hashlib.sha1(df.to_csv().encode("utf-8")).hexdigest()[:10]
    styler = StatusStyler(df, uuid=uuid, cell_ids=True)
    styler = styler.format(escape="html", na_rep="", precision=3)
    styler = styler.hide(axis="index")
    styler = styler.set_table_attributes(TABLE_ATTRIBUTES).set_table_styles(TABLE_STYLES)
    if df.empty:
        return styler

    failure_columns = [column for column in coloured if column_kinds[column] in FAILED_VALUES]
    if failure_columns:
        def shade_failed_row(row: pd.Series) -> list[str]:
            failed = any(
                _normalise(row[column]) in FAILED_VALUES[column_kinds[column]] for column in failure_columns
            )
            return [FAILED_ROW if failed else "" for _ in row]

        styler = styler.apply(shade_failed_row, axis=1)
    for column in coloured:
        colours = CELL_STYLES[column_kinds[column]]
        styler = styler.map(
            lambda value, colours=colours: colours.get(_normalise(value), ""), subset=[column]
        )
    return styler


def _normalise(value: object) -> str:
    return value.strip().lower() if isinstance(value, str) else ""


# --- notebook pages ---------------------------------------------------------------------------------

# Every block of nbconvert's lab template that would fetch something from a CDN is emptied: require.js,
# the widget manager, MathJax and mermaid. The runbook notebooks use none of them, and an audit page
# must open without a network.
_OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""
_OFFLINE_TEMPLATE_NAME = "vpclink_offline.html.j2"

# Without a widget manager or scripts, widget views and JavaScript outputs would render as nothing;
# leaving them out of the priority list makes their text/plain fallback (e.g. tqdm's bar) show instead.
_DISPLAY_PRIORITY = [
    "text/html",
    "text/markdown",
    "image/svg+xml",
    "text/latex",
    "image/png",
    "image/jpeg",
    "text/plain",
]


class RemoteAssetError(RunbookError, ValueError):
    """An exported page still refers to something on the network, so it would not open complete offline."""


def offline_exporter() -> HTMLExporter:
    """An HTMLExporter (lab template) that embeds images and loads nothing from the network."""
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    config = Config()
    config.NbConvertBase.display_data_priority = _DISPLAY_PRIORITY
    exporter = HTMLExporter(
        config=config,
        template_name="lab",
        extra_loaders=[jinja2.DictLoader({_OFFLINE_TEMPLATE_NAME: _OFFLINE_TEMPLATE})],
        embed_images=True,
        exclude_anchor_links=True,
    )
    exporter.template_file = _OFFLINE_TEMPLATE_NAME
    return exporter


_EXPORTERS = threading.local()


def _thread_exporter() -> HTMLExporter:
    """This thread's exporter: its templates are compiled on first use (~0.5 s), then reused for every page. An
    exporter is not shared between threads."""
    exporter = getattr(_EXPORTERS, "exporter", None)
    if exporter is None:
        exporter = _EXPORTERS.exporter = offline_exporter()
    return exporter


def export_html(notebook_path: str | Path, html_path: str | Path | None = None) -> Path:
    """Convert an executed notebook to one self-contained HTML page (default: next to it, `.html`)."""
    notebook_path = Path(notebook_path)
    html_path = notebook_path.with_suffix(".html") if html_path is None else Path(html_path)
    import nbformat

    notebook = nbformat.read(notebook_path, as_version=4)
    resources = {"metadata": {"name": notebook_path.stem, "path": str(notebook_path.parent.resolve())}}
    body, _ = _thread_exporter().from_notebook_node(notebook, resources=resources)
    remote = remote_references(body)
    if remote:
        raise RemoteAssetError(
            f"{notebook_path}: the HTML page would load {len(remote)} remote asset(s) "
            f"({', '.join(remote[:3])}); remove them from the notebook (e.g. a markdown image from the web)"
        )
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(body, encoding="utf-8")
    return html_path


_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)""")
_CSS_IMPORT = re.compile(r"""@import\s+['"]([^'"]+)""")


class _ReferenceCollector(HTMLParser):
    """Collects URLs a browser would fetch by itself: src/srcset/data of any tag, and <link href>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.references: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if not value:
                continue
            fetched = name in ("src", "srcset", "data", "poster") or (tag == "link" and name == "href")
            if fetched or (tag in ("image", "use", "feimage") and name in ("href", "xlink:href")):
                self.references.append(value.strip())
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.references += _CSS_URL.findall(data) + _CSS_IMPORT.findall(data)


def remote_references(page: str) -> list[str]:
    """Remote URLs in a page that a browser would load (not plain links in the content)."""
    collector = _ReferenceCollector()
    collector.feed(page)
    collector.close()
    remote = []
    for reference in collector.references:
        if reference.strip().lower().startswith(("http://", "https://", "//", "ftp://")):
            remote.append(reference)
    return remote


# --- run index ---------------------------------------------------------------------------------------

_PAGE_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; margin: 24px;
       color: #202124; max-width: 1200px; }
h1 { font-size: 1.5em; margin-bottom: 4px; }
h2 { font-size: 1.15em; margin-top: 28px; border-bottom: 1px solid #dadce0; padding-bottom: 4px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 10px; font-weight: bold; }
.empty { color: #5f6368; font-style: italic; }
a { color: #1a73e8; }
"""


def _table(rows: list[dict], columns: list[str], link_column: str | None = None) -> str:
    if not rows:
        return '<p class="empty">none</p>'
    records = [{column: row.get(column, "") for column in columns} for row in rows]
    frame = pd.DataFrame(records, columns=columns)
    styler = styled(frame)
    if link_column:
        # `styled` escapes values before formatters see them; undo that to build the href.
        styler = styler.format(_notebook_link, subset=[link_column], escape="html", na_rep="")
    return styler.to_html()


def _notebook_link(escaped_name: str) -> str:
    name = html.unescape(str(escaped_name))
    if not name:
        return ""
    page = Path(name).with_suffix(".html").name
    return f'<a href="{html.escape(quote(page))}">{html.escape(name)}</a>'


def _endpoint_text(run: dict) -> str:
    endpoint, kind = run.get("endpoint"), run.get("endpoint_kind")
    if kind == "sandbox":
        return f"sandbox (embedded AWS emulator) at {endpoint}"
    if endpoint:
        return f"custom endpoint {endpoint}"
    return f"AWS (standard endpoints, region {run.get('region', '?')})"


def write_index(run_dir: str | Path, run: dict) -> Path:
    """Write `index.html` in run_dir: the run summary, steps linking to their pages, changes, checks."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    status = str(run.get("status", "unknown"))
    colour = CELL_STYLES["status"].get(status.lower(), QUIET)
    steps = list(run.get("steps") or [])
    changes = list(run.get("changes") or [])
    checks = list(run.get("checks") or [])
    plan = list(run.get("plan") or [])
    planned = [row for row in plan if _normalise(row.get("action")) not in ("none", "")]
    failed_checks = [check for check in checks if _normalise(check.get("status")) in FAILED_VALUES["status"]]

    summary_fields = ["run_id", "environment", "command", "status", "started_at", "finished_at", "account",
                      "caller_arn", "region", "endpoint", "user", "host", "pid", "params_sha256", "code_version",
                      "code_clean"]
    summary = [{"field": field, "value": run[field]} for field in summary_fields if field in run]
    for row in summary:
        if row["field"] == "endpoint":  # which AWS: the emulator, another endpoint, or AWS itself
            row["value"] = _endpoint_text(run)
    check_counts = ", ".join(
        f"{sum(1 for check in checks if _normalise(check.get('status')) == value)} {value}"
        for value in ("pass", "fail", "warn", "skip")
    )
    title = f"Run {run.get('run_id', '')} — {run.get('environment', '')} {run.get('command', '')}".strip()

    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p><span class="badge" style="{colour}">{html.escape(status.upper())}</span> '
        f"{len(steps)} step(s), {len(planned)} planned change(s) of {len(plan)} plan row(s), "
        f"{len(changes)} change(s), checks: {html.escape(check_counts)} "
        '· <a href="run.json">run.json</a></p>',
    ]
    if run.get("interrupted"):
        why = run["interrupted"].get("why", "")
        sections.append(f'<p class="badge" style="{BAD}">interrupted: {html.escape(str(why))}; what it did '
                        "before is below (Changes lists every mutating call it made)</p>")
    if failed_checks:
        sections += ["<h2>Failed checks</h2>",
                     _table(failed_checks, ["id", "hop", "status", "detail", "remedy"])]
    sections += [
        "<h2>Run</h2>", _table(summary, ["field", "value"]),
        "<h2>Steps</h2>", _table(steps, ["notebook", "status", "seconds"], link_column="notebook"),
        # What the steps found and would do (plan mode) or did (apply): the rows of plan.jsonl.
        "<h2>Plan</h2>", _table(plan, ["resource", "action", "current", "desired", "why"]),
        "<h2>Changes</h2>", _table(changes, ["service", "operation", "resource"]),
        "<h2>Checks</h2>", _table(checks, ["id", "hop", "status", "detail", "remedy"]),
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_PAGE_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body>\n</html>\n"
    )
    index_path = run_dir / "index.html"
    index_path.write_text(page, encoding="utf-8")
    return index_path
