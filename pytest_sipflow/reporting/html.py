"""An HTML fragment for an item: an inline SVG ladder and the full SIP trace.

Meant for pytest-html's extras, but neither imports it nor needs it: the fragment is plain,
self-contained markup, so several items' fragments can share a page.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .ladder import Arrow, Ladder, build_ladder, cut
from .trace import SipRecord, as_records, mask_secrets, render_trace

CHAR = 7.3  # px per character of the 12 px monospace font
ROW = 22  # px per line
LEFT = 64  # px for the ms column
COLUMN = 190  # px between two parties' lines (at most)
MAX_WIDTH = 1100  # px the drawing tries to stay within
MIN_WIDTH = 640  # px, room for a group's label


def render_html(records: Iterable[SipRecord | Mapping[str, Any]], title: str, *,
                call_keys: Mapping[tuple[str, str], str] | None = None,
                parties: Mapping[str, str] | None = None,
                instances: Sequence[str] | None = None,
                last: int | None = 200, secrets: Iterable[str] = ()) -> str:
    """``<div class="sipflow-report">`` with a heading, the SVG ladder and the trace.

    Meant for pytest-html's extras (``extras.html(fragment)``), but pytest-html is not imported
    here nor a dependency: the fragment is plain, self-contained markup (no script, no external
    style, no ids, so several items' fragments can share a page). The SVG follows the text
    ladder's layout (``ladder.build_ladder``): a column per instance and foreign party, one
    arrow per wire message with its ms offset, Call-ID groups with the instances' callId
    keys, the last N messages with a note of how many were left out. Every text is escaped;
    secrets are masked before escaping.
    """
    secrets = list(secrets)
    recs = [r.masked(secrets) for r in as_records(records)]
    ladder = build_ladder(recs, call_keys=call_keys, parties=parties, instances=instances,
                          last=last)
    trace = render_trace(recs, secrets)
    title = mask_secrets(title, secrets)
    return mask_secrets(
        '<div class="sipflow-report">\n'
        f'<h4 style="font-family:sans-serif">{escape(title)}</h4>\n'
        f"{render_svg(ladder, secrets)}\n"
        '<pre class="sipflow-trace" style="font-size:12px;max-height:40em;overflow:auto;'
        f'border:1px solid #ccc;padding:4px">{escape(trace)}</pre>\n'
        "</div>", secrets)


#: Recordings up to this size are embedded (a self-contained report plays them anywhere);
#: larger ones are linked by their file: URI.
EMBED_MAX_BYTES = 1_000_000


def render_recordings(recordings: Iterable[Mapping[str, Any]]) -> str:
    """``<div class="sipflow-audio">``: an ``<audio controls>`` player per recording, with
    its path; empty when there is none. A missing file is named, not played."""
    rows = []
    for rec in recordings:
        path = Path(str(rec.get("path", "")))
        label = escape(f"{rec.get('instance')} heard callId {rec.get('callId')!r}: {path}")
        try:
            size = path.stat().st_size
        except OSError:
            rows.append(f"<p>{label} (file missing)</p>")
            continue
        if size <= EMBED_MAX_BYTES:
            src = "data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode()
        else:
            src = path.resolve().as_uri()
        rows.append(f'<p style="font-family:sans-serif">{label}<br>'
                    f'<audio controls preload="none" src="{escape(src)}"></audio></p>')
    if not rows:
        return ""
    return ('<div class="sipflow-audio"><h4 style="font-family:sans-serif">What each side '
            "heard</h4>\n" + "\n".join(rows) + "\n</div>")


def render_svg(ladder: Ladder, secrets: Iterable[str] = ()) -> str:
    """The ladder as a standalone ``<svg>`` element (no ids, no script)."""
    secrets = list(secrets)
    n = max(1, len(ladder.columns))
    step = max(110, min(COLUMN, (MAX_WIDTH - LEFT) // n))
    xs = [LEFT + step // 2 + i * step for i in range(len(ladder.columns))]
    lines = 2 + (1 if ladder.omitted else 0) + sum(1 + len(g.arrows) for g in ladder.groups)
    width, height = max(LEFT + step * n, MIN_WIDTH), ROW * (lines + 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="monospace" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="#fff"/>']

    def text(x: float, y: float, value: str, anchor: str = "middle", **style: str) -> None:
        attrs = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in style.items())
        out.append(f'<text x="{x:.0f}" y="{y:.0f}" text-anchor="{anchor}"{attrs}>'
                   f"{escape(mask_secrets(value, secrets))}</text>")

    for x, name in zip(xs, ladder.columns):
        text(x, ROW - 6, cut(name, int(step / CHAR) - 1), font_weight="bold")
        out.append(f'<line x1="{x}" y1="{ROW}" x2="{x}" y2="{height - 4}" stroke="#999" '
                   'stroke-dasharray="4 3"/>')
    text(LEFT - 8, 2 * ROW - 6, "ms", "end", fill="#666")
    y = 2 * ROW
    if ladder.omitted:
        y += ROW
        s = "s" if ladder.omitted != 1 else ""
        text(4, y - 6, f"... {ladder.omitted} earlier message{s} not shown", "start", fill="#666")
    for group in ladder.groups:
        y += ROW
        out.append(f'<rect x="0" y="{y - ROW + 3}" width="{width}" height="{ROW - 4}" '
                   'fill="#eef2f7"/>')
        text(4, y - 7, cut(group.label, int(width / CHAR) - 1), "start", font_style="italic")
        for arrow in group.arrows:
            y += ROW
            text(LEFT - 8, y - 6, f"{arrow.offset_ms:.0f}", "end", fill="#666")
            out += _arrow(arrow, xs, y, step, secrets)
    out.append("</svg>")
    return "\n".join(out)


def _arrow(arrow: Arrow, xs: list[int], y: int, step: int, secrets: list[str]) -> list[str]:
    color = _color(arrow.label)
    a, b = xs[arrow.source], xs[arrow.target]
    line_y = y - 4
    title = f"<title>{escape(mask_secrets(arrow.record.summary, secrets))}</title>"
    if a == b:  # to itself: a small loop
        path = f"M{a} {line_y - 8} h24 v8 h-18"
        label_x, room, head = a + 30, step - 34, _head(a + 2, line_y, -1)
        anchor = "start"
    else:
        path = f"M{a} {line_y} H{b}"
        label_x, room, head = (a + b) / 2, abs(b - a) - 12, _head(b, line_y, 1 if b > a else -1)
        anchor = "middle"
    label = escape(mask_secrets(cut(arrow.label, max(3, int(room / CHAR))), secrets))
    return [f"<g>{title}",
            f'<path d="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>',
            f'<polygon points="{head}" fill="{color}"/>',
            f'<text x="{label_x:.0f}" y="{line_y - 4}" text-anchor="{anchor}" fill="{color}">'
            f"{label}</text></g>"]


def _head(x: int, y: int, direction: int) -> str:
    back = x - 8 * direction
    return f"{x},{y} {back},{y - 4} {back},{y + 4}"


def _color(label: str) -> str:
    """Requests blue, 1xx grey, 2xx green, 3xx-6xx red."""
    code = label[:1]
    if not label[:3].isdigit():
        return "#1f5fbf"
    return {"1": "#777", "2": "#1a7f37"}.get(code, "#c62828")
