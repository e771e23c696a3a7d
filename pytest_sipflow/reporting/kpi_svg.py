"""Plots of a load run as plain inline SVG (no plotting library): a latency histogram and
calls per second. Both are self-contained ``<svg>`` elements with a ``<title>`` per bar."""

from __future__ import annotations

import math
from html import escape
from typing import Iterable, Sequence

from .kpi import CallTimes

W, H = 640, 240
LEFT, BOTTOM, TOP, RIGHT = 48, 36, 24, 12


def _frame(title: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" class="sipflow-plot" width="{W}" '
            f'height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">',
            f'<rect width="{W}" height="{H}" fill="#fff"/>',
            f'<text x="{W / 2:.0f}" y="15" text-anchor="middle" font-weight="bold">'
            f"{escape(title)}</text>",
            f'<line x1="{LEFT}" y1="{H - BOTTOM}" x2="{W - RIGHT}" y2="{H - BOTTOM}" '
            'stroke="#333"/>',
            f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{H - BOTTOM}" stroke="#333"/>']


def _bars(counts: Sequence[float], labels: Sequence[str], tips: Sequence[str],
          color: str, top: float | None = None, kind: str = "bar") -> list[str]:
    """Bars scaled to ``top`` (default the largest count); axis labels unless ``top`` is
    given (an overlay on bars already drawn)."""
    overlay = top is not None
    top = top or max(counts, default=0) or 1
    plot_w, plot_h = W - LEFT - RIGHT, H - TOP - BOTTOM
    step = plot_w / max(1, len(counts))
    out = [] if overlay else [
        f'<text x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end">{top:g}</text>',
        f'<text x="{LEFT - 4}" y="{H - BOTTOM}" text-anchor="end">0</text>']
    every = max(1, math.ceil(len(counts) / 8))
    for i, (count, label, tip) in enumerate(zip(counts, labels, tips)):
        h = plot_h * count / top
        x = LEFT + i * step
        out.append(f'<rect class="{kind}" x="{x + 1:.1f}" y="{H - BOTTOM - h:.1f}" '
                   f'width="{max(1.0, step - 2):.1f}" height="{h:.1f}" fill="{color}">'
                   f"<title>{escape(tip)}</title></rect>")
        if i % every == 0 and not overlay:
            out.append(f'<text x="{x + step / 2:.0f}" y="{H - BOTTOM + 14}" '
                       f'text-anchor="middle">{escape(label)}</text>')
    return out


def histogram(values: Iterable[float], title: str = "setup time (ms)", bins: int = 20) -> str:
    """Counts of ``values`` in ``bins`` equal-width bins from the minimum to the maximum."""
    data = sorted(values)
    out = _frame(f"{title}, {len(data)} samples")
    if data:
        low, high = data[0], data[-1]
        width = (high - low) / bins or 1.0
        counts = [0] * bins
        for v in data:
            counts[min(bins - 1, int((v - low) / width))] += 1
        edges = [low + i * width for i in range(bins)]
        out += _bars(counts, [f"{e:.0f}" for e in edges],
                     [f"{e:.1f}–{e + width:.1f} ms: {c}" for e, c in zip(edges, counts)],
                     "#1f5fbf")
    out.append("</svg>")
    return "\n".join(out)


def rate_plot(calls: Iterable[CallTimes], title: str = "calls started per second") -> str:
    """Calls started in each second of the run; the answered share darker."""
    calls = sorted(calls, key=lambda c: c.started)
    out = _frame(f"{title}, {len(calls)} calls")
    if calls:
        start = calls[0].started
        seconds = int(calls[-1].started - start) + 1
        started, answered = [0] * seconds, [0] * seconds
        for c in calls:
            second = int(c.started - start)
            started[second] += 1
            answered[second] += c.answered
        out += _bars(started, [f"{s}s" for s in range(seconds)],
                     [f"second {s}: {n} started, {a} answered"
                      for s, (n, a) in enumerate(zip(started, answered))], "#93b4e0")
        out += _bars(answered, [""] * seconds, [f"second {s}: {a} answered"
                                                for s, a in enumerate(answered)],
                     "#1a7f37", top=max(started), kind="bar answered")
        out.append(f'<text x="{W - RIGHT}" y="{TOP + 4}" text-anchor="end" fill="#1a7f37">'
                   "green: answered</text>")
    out.append("</svg>")
    return "\n".join(out)
