"""Draw the request path (domain -> ... -> ECS tasks) as self-contained SVG for notebooks and HTML pages."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from vpclink_runbooks.errors import RunbookError

HOP_IDS = (
    "domain",
    "mapping",  # the base path mapping; lib/checks.py names the first hop this way

    "stage",
    "integration",
    "vpc_link",
    "nlb",
    "listener",
    "target_group",
    "targets",
    "security_group",
    "task_definition",
    "service",
    "endpoint",  # the end-to-end request through the custom domain
)
STATUSES = ("pass", "fail", "warn", "skip", "planned", "unknown")

# fill, stroke, text colour. Every fill differs so a status is readable even without the tag text.
PALETTE = {
    "pass": ("#e6f4ea", "#1e8e3e", "#137333"),
    "fail": ("#fce8e6", "#d93025", "#a50e0e"),
    "warn": ("#fef7e0", "#e37400", "#b06000"),
    "skip": ("#f1f3f4", "#80868b", "#5f6368"),
    "planned": ("#e8f0fe", "#1a73e8", "#174ea6"),
    "unknown": ("#ffffff", "#9aa0a6", "#5f6368"),
}
HIGHLIGHT_COLOUR = "#d93025"

SANS = "-apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
MONO = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace"

# Geometry: 900px fits a JupyterLab notebook column; four hops per row keep labels legible.
WIDTH = 900
MARGIN = 16
COLUMNS = 4
GAP = 28
BOX_W = (WIDTH - 2 * MARGIN - (COLUMNS - 1) * GAP) // COLUMNS
BOX_H = 92
ROW_GAP = 48  # room for the wrap connector and the "first broken hop" marker
AZ_COLUMNS = 4
INSTANCE_H = 70

# Monospace glyphs are ~0.6em wide, which lets us wrap without measuring fonts.
MONO_RATIO = 0.6

_INVALID_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_BREAK_AFTER = " /.-_:(),"


class DiagramInputError(RunbookError, ValueError):
    """A hop or target the diagram cannot draw (unknown hop id or status)."""


@dataclass
class Hop:
    """One hop of the request path, drawn as a box."""

    id: str
    title: str
    label: str
    detail: str = ""
    status: str = "planned"


@dataclass
class Target:
    """One registered (or expected) instance target, drawn inside its AZ group."""

    az: str
    instance_id: str
    private_ip: str = ""
    host_port: int | None = None
    container_port: int | None = None
    status: str = "planned"
    note: str = ""


class PathDiagram:
    """A rendered path diagram: SVG for Jupyter and files, HTML for pages, text for plain outputs."""

    def __init__(self, svg: str, text: str):
        self.svg = svg
        self.text = text

    def _repr_svg_(self) -> str:
        return self.svg

    def _repr_html_(self) -> str:
        return f'<div class="vpclink-path-diagram" style="max-width:100%;overflow-x:auto">{self.svg}</div>'

    def __str__(self) -> str:
        return self.svg

    def __repr__(self) -> str:
        return self.text

    def save(self, path: str | Path) -> Path:
        """Write the diagram; a `.html` path gets a standalone page, anything else an SVG file."""
        path = Path(path)
        if path.suffix.lower() in (".html", ".htm"):
            content = (
                '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                f"<title>{_esc(_first_line(self.text))}</title>\n</head>\n<body>\n"
                f"{self._repr_html_()}\n</body>\n</html>\n"
            )
        else:
            content = '<?xml version="1.0" encoding="UTF-8"?>\n' + self.svg + "\n"
        path.write_text(content, encoding="utf-8")
        return path


def path_diagram(
    hops: list[Hop], targets: list[Target], *, title: str = "", highlight: str | None = None
) -> PathDiagram:
    """Draw hops left to right in the given order (wrapping rows), with the targets grouped per AZ.

    The target panel follows the last of the `target_group`/`targets` hops (or the end of the chain
    when neither is given); hops after it continue below. `highlight` names the first broken hop.
    """
    hops = [_checked_hop(hop) for hop in hops]
    targets = [_checked_target(target) for target in targets]
    hop_ids = [hop.id for hop in hops]
    if highlight is not None and highlight not in HOP_IDS:
        raise DiagramInputError(f"highlight {highlight!r} is not a hop id; use one of {', '.join(HOP_IDS)}")

    split = len(hops)
    for index, hop in enumerate(hops):
        if hop.id in ("target_group", "targets"):
            split = index + 1
    front, back = hops[:split], hops[split:]
    highlight_panel = highlight == "targets" and "targets" not in hop_ids and bool(targets)
    highlight_missing = highlight is not None and highlight not in hop_ids and not highlight_panel

    body: list[str] = []
    y = _header(body, title, highlight, highlight_missing)
    y += 18  # room above the first row for the marker
    previous: tuple[float, float, float, float] | None = None

    def place_hops(chain: list[Hop], y: float) -> float:
        nonlocal previous
        for start in range(0, len(chain), COLUMNS):
            row = chain[start : start + COLUMNS]
            for column, hop in enumerate(row):
                x = MARGIN + column * (BOX_W + GAP)
                box = (x, y, BOX_W, BOX_H)
                if previous is not None:
                    same_row = column > 0
                    body.append(_arrow_right(previous, box) if same_row else _arrow_wrap(previous, box))
                body.append(_hop_box(hop, box, highlighted=hop.id == highlight))
                previous = box
            y += BOX_H + ROW_GAP
        return y

    y = place_hops(front, y)
    if targets:
        panel_box, panel_svg = _target_panel(targets, y, highlighted=highlight_panel)
        if previous is not None:
            body.append(_arrow_wrap(previous, panel_box))
        body.append(panel_svg)
        previous = panel_box
        y += panel_box[3] + ROW_GAP
    y = place_hops(back, y)

    height = int(y - ROW_GAP + MARGIN) if (hops or targets) else int(y)
    return PathDiagram(_svg(body, height, title or "Request path"), _as_text(title, hops, targets, highlight))


def _svg(body: list[str], height: int, aria: str) -> str:
    """The drawn elements in one self-contained SVG document, titled (and labelled) `aria`."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{_attr(aria)}" '
        f'font-family="{_attr(SANS)}" style="max-width:100%;height:auto;background:#ffffff">'
        f"<title>{_esc(aria)}</title>" + "".join(body) + "</svg>"
    )


# --- validation -------------------------------------------------------------------------------------


def _status(value: str, owner: str) -> str:
    status = str(value or "").strip().lower()
    if status not in STATUSES:
        raise DiagramInputError(f"{owner}: status {value!r} is not one of {', '.join(STATUSES)}")
    return status


def _checked_hop(hop: Hop) -> Hop:
    if hop.id not in HOP_IDS:
        raise DiagramInputError(f"Hop id {hop.id!r} is not one of {', '.join(HOP_IDS)}")
    return Hop(
        id=hop.id,
        title=_clean(hop.title),
        label=_clean(hop.label),
        detail=_clean(hop.detail),
        status=_status(hop.status, f"Hop {hop.id!r}"),
    )


def _checked_target(target: Target) -> Target:
    return Target(
        az=_clean(target.az) or "unknown AZ",
        instance_id=_clean(target.instance_id),
        private_ip=_clean(target.private_ip),
        host_port=None if target.host_port is None else int(target.host_port),
        container_port=None if target.container_port is None else int(target.container_port),
        status=_status(target.status, f"Target {target.instance_id!r}"),
        note=_clean(target.note),
    )


# --- text helpers -----------------------------------------------------------------------------------


def _clean(value: object) -> str:
    text = "" if value is None else str(value)
    return _INVALID_XML.sub("", " ".join(text.split()))


def _esc(text: str) -> str:
    return escape(text)


def _attr(text: str) -> str:
    return escape(text, {'"': "&quot;", "'": "&apos;"})


def _first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def _wrap(text: str, width: int, max_lines: int) -> list[str]:
    """Greedy wrap at natural separators of AWS names; the last line ends in an ellipsis if cut."""
    lines: list[str] = []
    rest = text
    while rest and len(lines) < max_lines:
        if len(rest) <= width:
            lines.append(rest)
            rest = ""
            break
        cut = width
        for index in range(width, width // 2, -1):
            if rest[index - 1] in _BREAK_AFTER:
                cut = index
                break
        lines.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest and lines:
        lines[-1] = lines[-1][: width - 1].rstrip() + "…"
    return lines


def _chars(pixels: float, font_size: float) -> int:
    return max(4, int(pixels / (font_size * MONO_RATIO)))


def _text(x: float, y: float, content: str, *, size: float, fill: str, mono: bool = False,
          bold: bool = False, anchor: str = "start") -> str:
    attributes = [f'x="{x:g}"', f'y="{y:g}"', f'font-size="{size:g}"', f'fill="{fill}"']
    if mono:
        attributes.append(f'font-family="{_attr(MONO)}"')
    if bold:
        attributes.append('font-weight="bold"')
    if anchor != "start":
        attributes.append(f'text-anchor="{anchor}"')
    return f"<text {' '.join(attributes)}>{_esc(content)}</text>"


# --- drawing ----------------------------------------------------------------------------------------


def _header(body: list[str], title: str, highlight: str | None, highlight_missing: bool) -> float:
    y = MARGIN
    title = _clean(title)
    if title:
        body.append(_text(MARGIN, y + 14, title, size=15, fill="#202124", bold=True))
        y += 24
    x = MARGIN
    legend_y = y + 4
    for status in STATUSES:
        fill, stroke, _ = PALETTE[status]
        dash = ' stroke-dasharray="3 2"' if status == "unknown" else ""
        body.append(
            f'<rect x="{x}" y="{legend_y}" width="12" height="12" rx="2" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="1.5"{dash}/>'
        )
        body.append(_text(x + 17, legend_y + 10.5, status, size=11, fill="#3c4043"))
        x += 80  # one slot per entry: proportional text widths are unknown here
    if highlight is not None:
        body.append(
            f'<rect x="{x}" y="{legend_y - 1}" width="14" height="14" rx="3" fill="none" '
            f'stroke="{HIGHLIGHT_COLOUR}" stroke-width="3"/>'
        )
        body.append(_text(x + 20, legend_y + 10.5, "first broken hop", size=11, fill=HIGHLIGHT_COLOUR,
                          bold=True))
    y = legend_y + 12
    if highlight_missing:
        y += 8
        body.append(_text(MARGIN, y + 12, f"▼ first broken hop: {highlight} (not drawn)", size=12,
                          fill=HIGHLIGHT_COLOUR, bold=True))
        y += 16
    return y + 8


def _status_rect(box: tuple[float, float, float, float], status: str, *, highlighted: bool,
                 radius: int = 8) -> list[str]:
    x, y, w, h = box
    fill, stroke, _ = PALETTE[status]
    dash = ' stroke-dasharray="5 3"' if status == "unknown" else ""
    parts = []
    if highlighted:
        parts.append(
            f'<rect x="{x - 4:g}" y="{y - 4:g}" width="{w + 8:g}" height="{h + 8:g}" rx="{radius + 3}" '
            f'fill="none" stroke="{HIGHLIGHT_COLOUR}" stroke-width="3.5" class="highlight"/>'
        )
        parts.append(_text(x + w, y - 9, "▼ first broken hop", size=11, fill=HIGHLIGHT_COLOUR,
                           bold=True, anchor="end"))
    width = 2.5 if highlighted else 1.5
    parts.append(
        f'<rect x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}" rx="{radius}" fill="{fill}" '
        f'stroke="{stroke}" stroke-width="{width}"{dash}/>'
    )
    return parts


def _hop_box(hop: Hop, box: tuple[float, float, float, float], *, highlighted: bool) -> str:
    x, y, w, _ = box
    _, _, ink = PALETTE[hop.status]
    tooltip = f"{hop.title}: {hop.label}" + (f" ({hop.detail})" if hop.detail else "") + f" [{hop.status}]"
    parts = [f'<g class="hop hop-{hop.id} status-{hop.status}" data-hop="{hop.id}">',
             f"<title>{_esc(tooltip)}</title>"]
    parts += _status_rect(box, hop.status, highlighted=highlighted)
    parts.append(_text(x + w - 8, y + 15, hop.status.upper(), size=9.5, fill=ink, bold=True, anchor="end"))
    title_chars = max(4, int((w - 70) / 7.2))
    parts.append(_text(x + 10, y + 18, _wrap(hop.title, title_chars, 1)[0] if hop.title else "", size=12.5,
                       fill="#202124", bold=True))
    for line_no, line in enumerate(_wrap(hop.label, _chars(w - 20, 11.5), 2)):
        parts.append(_text(x + 10, y + 37 + line_no * 14, line, size=11.5, fill="#202124", mono=True))
    for line_no, line in enumerate(_wrap(hop.detail, _chars(w - 20, 10), 2)):
        parts.append(_text(x + 10, y + 70 + line_no * 12.5, line, size=10, fill="#5f6368", mono=True))
    parts.append("</g>")
    return "".join(parts)


def _ports(target: Target) -> str:
    if target.host_port is None and target.container_port is None:
        return ""
    host = f":{target.host_port}" if target.host_port is not None else ":?"
    container = f":{target.container_port}" if target.container_port is not None else ":?"
    return f"{host} -> {container} container"


def _group_by_az(targets: Iterable[Target]) -> dict[str, list[Target]]:
    groups: dict[str, list[Target]] = {}
    for target in targets:
        groups.setdefault(target.az, []).append(target)
    return {az: groups[az] for az in sorted(groups)}


def _target_panel(targets: list[Target], top: float, *, highlighted: bool
                  ) -> tuple[tuple[float, float, float, float], str]:
    groups = _group_by_az(targets)
    panel_x, panel_w = MARGIN, WIDTH - 2 * MARGIN
    inner = 12
    header_h = 26
    columns = min(len(groups), AZ_COLUMNS)
    group_w = (panel_w - 2 * inner - (columns - 1) * 16) / columns
    parts: list[str] = []
    y = top + header_h
    az_list = list(groups)
    for start in range(0, len(az_list), AZ_COLUMNS):
        row_azs = az_list[start : start + AZ_COLUMNS]
        row_h = max(30 + len(groups[az]) * (INSTANCE_H + 8) for az in row_azs)
        for column, az in enumerate(row_azs):
            gx = panel_x + inner + column * (group_w + 16)
            parts.append(f'<g class="az" data-az="{_attr(az)}">')
            parts.append(
                f'<rect x="{gx:g}" y="{y:g}" width="{group_w:g}" height="{row_h:g}" rx="6" '
                f'fill="#f8f9fa" stroke="#dadce0" stroke-width="1"/>'
            )
            count = len(groups[az])
            heading = f"{az} ({count} instance{'s' if count != 1 else ''})"
            parts.append(_text(gx + 10, y + 18, _wrap(heading, _chars(group_w - 20, 11.5), 1)[0], size=12,
                               fill="#202124", bold=True))
            for index, target in enumerate(groups[az]):
                box = (gx + 10, y + 28 + index * (INSTANCE_H + 8), group_w - 20, INSTANCE_H)
                parts.append(_instance_box(target, box))
            parts.append("</g>")
        y += row_h + 12
    height = y - top
    panel = (panel_x, top, panel_w, height)
    frame = _status_rect(panel, "unknown", highlighted=highlighted, radius=10) if highlighted else [
        f'<rect x="{panel_x}" y="{top:g}" width="{panel_w}" height="{height:g}" rx="10" fill="#ffffff" '
        f'stroke="#9aa0a6" stroke-width="1.2"/>'
    ]
    instance_count = len(targets)
    caption = (f"Instances behind the target group: {instance_count} in {len(groups)} "
               f"AZ{'s' if len(groups) != 1 else ''}")
    head = _text(panel_x + inner, top + 18, caption, size=12.5, fill="#202124", bold=True)
    return panel, '<g class="targets-panel">' + "".join(frame) + head + "".join(parts) + "</g>"


def _instance_box(target: Target, box: tuple[float, float, float, float]) -> str:
    x, y, w, _ = box
    _, _, ink = PALETTE[target.status]
    chars = _chars(w - 20, 11)
    tooltip = " ".join(
        part for part in (target.instance_id, target.private_ip, _ports(target), target.note,
                          f"[{target.status}]") if part
    )
    parts = [f'<g class="instance status-{target.status}" data-instance="{_attr(target.instance_id)}">',
             f"<title>{_esc(tooltip)}</title>"]
    parts += _status_rect(box, target.status, highlighted=False, radius=5)
    # The status tag sits on the note line so a full 19-character instance id fits four AZs wide.
    parts.append(_text(x + w - 8, y + 62, target.status.upper(), size=9, fill=ink, bold=True, anchor="end"))
    parts.append(_text(x + 8, y + 15, _wrap(target.instance_id, chars, 1)[0] if target.instance_id else "",
                       size=11, fill="#202124", mono=True, bold=True))
    ports = _ports(target)
    if len(ports) > chars:
        ports = ports.removesuffix(" container")
    lines = [target.private_ip, ports]
    for line_no, line in enumerate(lines):
        if line:
            parts.append(_text(x + 8, y + 31 + line_no * 14, _wrap(line, chars, 1)[0], size=11,
                               fill="#202124", mono=True))
    if target.note:
        note_chars = max(4, int((w - 16 - 60) / 6.0))
        parts.append(_text(x + 8, y + 62, _wrap(target.note, note_chars, 1)[0], size=10, fill=ink))
    parts.append("</g>")
    return "".join(parts)


def _arrow_head(x: float, y: float, direction: str) -> str:
    if direction == "right":
        points = f"{x:g},{y:g} {x - 7:g},{y - 4:g} {x - 7:g},{y + 4:g}"
    else:  # down
        points = f"{x:g},{y:g} {x - 4:g},{y - 7:g} {x + 4:g},{y - 7:g}"
    return f'<polygon points="{points}" fill="#5f6368"/>'


def _arrow_right(source: tuple[float, float, float, float], target: tuple[float, float, float, float]) -> str:
    sx, sy, sw, sh = source
    tx = target[0]
    y = sy + sh / 2
    start, end = sx + sw + 2, tx - 6
    line = (f'<line x1="{start:g}" y1="{y:g}" x2="{end - 6:g}" y2="{y:g}" '
            'stroke="#5f6368" stroke-width="1.6"/>')
    return line + _arrow_head(end, y, "right")


def _arrow_wrap(source: tuple[float, float, float, float], target: tuple[float, float, float, float]) -> str:
    """Connect the end of one row to the start of the next: down, back left, down."""
    sx, sy, sw, sh = source
    tx, ty, _, _ = target
    x1 = sx + sw - 24
    y1 = sy + sh + 2
    mid = sy + sh + 13
    x2 = tx + 24
    y2 = ty - 6
    return (f'<polyline points="{x1:g},{y1:g} {x1:g},{mid:g} {x2:g},{mid:g} {x2:g},{y2 - 6:g}" fill="none" '
            f'stroke="#5f6368" stroke-width="1.6" stroke-linejoin="round"/>' + _arrow_head(x2, y2, "down"))


def _as_text(title: str, hops: list[Hop], targets: list[Target], highlight: str | None) -> str:
    """A plain-text rendering, stored as text/plain next to the SVG by Jupyter and papermill."""
    lines = [f"Path diagram: {_clean(title)}" if title else "Path diagram"]
    for index, hop in enumerate(hops):
        arrow = "  " if index == 0 else "->"
        detail = f" ({hop.detail})" if hop.detail else ""
        marker = "   <== first broken hop" if hop.id == highlight else ""
        lines.append(f"{arrow} [{hop.status.upper()}] {hop.title}: {hop.label}{detail}{marker}")
    for az, members in _group_by_az(targets).items():
        lines.append(f"   {az}:")
        for target in members:
            fields = [target.instance_id, target.private_ip, _ports(target), f"[{target.status.upper()}]",
                      target.note]
            lines.append("     " + " ".join(field for field in fields if field))
    if highlight is not None and highlight not in {hop.id for hop in hops}:
        lines.append(f"first broken hop: {highlight}")
    return "\n".join(lines)
