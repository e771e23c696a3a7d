"""Scenario coverage as one self-contained HTML page: each file's graph as the editor lays
it out (nodes at their ``position``; a layered layout when a file has none), nodes coloured
by outcome, failure edges dashed red (faint when never taken). Inline SVG, no script.
"""

from __future__ import annotations

from html import escape
from typing import Iterable

from .coverage import Coverage, FileCoverage, FlowShape

NODE_W, NODE_H = 170, 46
GAP_X, GAP_Y = 40, 60
PAD = 20
FILL = {"ok": "#d4f4dd", "failed": "#fbd5d5", "never": "#e5e7eb", "untaken": "#fff1c2",
        "instance": "#dbeafe"}
STROKE = {"ok": "#1a7f37", "failed": "#c62828", "never": "#9ca3af", "untaken": "#b7791f",
          "instance": "#1f5fbf"}
LEGEND = (("ok", "ran"), ("failed", "failed (no failure branch)"), ("untaken",
          "ran, failure branch never taken"), ("never", "never ran"))


def layout(shape: FlowShape) -> dict[str, tuple[float, float]]:
    """Top-left corner of every node: the editor's positions when the file has distinct
    ones, else layers by distance from the instances, instances on top."""
    given = {n.id: n.position for n in shape.nodes if n.position is not None}
    if len(given) == len(shape.nodes) and len(set(given.values())) == len(given):
        return {k: v for k, v in given.items() if v is not None}
    depth = {n.id: 0 for n in shape.nodes if n.type == "sipInstance"}
    targets = {n.id for n in shape.nodes} & {e.target for e in shape.edges}
    for n in shape.nodes:  # steps no edge leads to start a layer below the instances
        if n.id not in depth and n.id not in targets:
            depth[n.id] = 1
    for _ in range(len(shape.nodes)):  # longest path, bounded (cycles are refused anyway)
        changed = False
        for e in shape.edges:
            if e.source in depth and depth.get(e.target, -1) < depth[e.source] + 1:
                depth[e.target] = depth[e.source] + 1
                changed = True
        if not changed:
            break
    rows: dict[int, list[str]] = {}
    for n in shape.nodes:
        rows.setdefault(depth.get(n.id, 0), []).append(n.id)
    return {node_id: (i * (NODE_W + GAP_X), level * (NODE_H + GAP_Y))
            for level, ids in rows.items() for i, node_id in enumerate(ids)}


def render_graph(cov: FileCoverage, key: str = "g") -> str:
    """The file's graph as an ``<svg>`` element; each node's ``<title>`` names its outcome.
    ``key`` makes the arrow markers' ids unique in a page of several graphs."""
    shape = cov.shape
    at = layout(shape)
    if not at:
        return "<p>(no nodes)</p>"
    x0, y0 = min(x for x, _ in at.values()) - PAD, min(y for _, y in at.values()) - PAD
    width = max(x for x, _ in at.values()) - x0 + NODE_W + PAD
    height = max(y for _, y in at.values()) - y0 + NODE_H + PAD
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="sipflow-graph" '
           f'width="{width:.0f}" height="{height:.0f}" viewBox="{x0:.0f} {y0:.0f} '
           f'{width:.0f} {height:.0f}" font-family="sans-serif" font-size="12">',
           "<defs>" + _marker(f"{key}-arrow", "#555") + _marker(f"{key}-arrow-red", "#c62828")
           + "</defs>"]
    for e in shape.edges:
        if e.source not in at or e.target not in at:
            continue
        (sx, sy), (tx, ty) = at[e.source], at[e.target]
        x1, y1, x2, y2 = _ends(sx, sy, tx, ty)
        if e.failure:
            taken = e.source in cov.taken
            style = (f'stroke="#c62828" stroke-dasharray="6 4" stroke-width="{2 if taken else 1.2}"'
                     f' opacity="{1 if taken else 0.45}" marker-end="url(#{key}-arrow-red)"')
            kind = "failure edge, taken" if taken else "failure edge, never taken"
        else:
            style = f'stroke="#555" stroke-width="1.2" marker-end="url(#{key}-arrow)"'
            kind = "edge"
        out.append(f'<line class="edge{" failure" if e.failure else ""}" x1="{x1:.0f}" '
                   f'y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" {style}>'
                   f"<title>{escape(f'{e.source} -> {e.target}: {kind}')}</title></line>")
    for n in shape.nodes:
        if n.id not in at:
            continue
        x, y = at[n.id]
        outcome = "instance" if n.type == "sipInstance" else cov.outcome(n.id)
        title = f"{n.id}: {n.name} ({outcome})"
        out.append(f'<g class="node {outcome}" data-node="{escape(n.id)}">'
                   f"<title>{escape(title)}</title>"
                   f'<rect x="{x:.0f}" y="{y:.0f}" width="{NODE_W}" height="{NODE_H}" rx="6" '
                   f'fill="{FILL[outcome]}" stroke="{STROKE[outcome]}" stroke-width="1.5"/>'
                   f'<text x="{x + NODE_W / 2:.0f}" y="{y + 19:.0f}" text-anchor="middle" '
                   f'font-weight="bold">{escape(_cut(n.label or n.name, 22))}</text>'
                   f'<text x="{x + NODE_W / 2:.0f}" y="{y + 35:.0f}" text-anchor="middle" '
                   f'fill="#555">{escape(_cut(n.id, 24))}</text></g>')
    out.append("</svg>")
    return "\n".join(out)


def _marker(ident: str, color: str) -> str:
    return (f'<marker id="{ident}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
            f'fill="{color}"/></marker>')


def _ends(sx: float, sy: float, tx: float, ty: float) -> tuple[float, float, float, float]:
    """From the source box's edge to the target box's edge, on the line between centres."""
    (ax, ay), (bx, by) = (sx + NODE_W / 2, sy + NODE_H / 2), (tx + NODE_W / 2, ty + NODE_H / 2)
    dx, dy = bx - ax, by - ay
    if dx == dy == 0:
        return ax, ay, bx, by
    scale = min(NODE_W / 2 / abs(dx) if dx else 1e9, NODE_H / 2 / abs(dy) if dy else 1e9)
    return ax + dx * scale, ay + dy * scale, bx - dx * scale, by - dy * scale


def _cut(text: str, size: int) -> str:
    return text if len(text) <= size else text[:size - 2] + ".."


def render_page(coverage: Coverage, title: str = "sipflow scenario coverage") -> str:
    """The whole page: the table, a legend, then one section per file."""
    legend = "".join(f'<span style="background:{FILL[k]};border:1px solid {STROKE[k]};'
                     f'padding:1px 6px;margin-right:8px">{escape(v)}</span>' for k, v in LEGEND)
    sections = [_section(path, cov, f"g{i}")
                for i, (path, cov) in enumerate(sorted(coverage.files.items()))]
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title></head>\n"
            '<body style="font-family:sans-serif">\n'
            f"<h1>{escape(title)}: {coverage.percent:.0f}%</h1>\n"
            f'<pre class="sipflow-coverage-table">{escape(coverage.table())}</pre>\n'
            f"<p>{legend}<span style=\"color:#c62828\">- - - failure edge</span></p>\n"
            + "\n".join(sections) + "\n</body></html>\n")


def _section(path: str, cov: FileCoverage, key: str) -> str:
    lines = _lines(cov.missed, "never ran") + _lines(cov.not_taken, "failure branch never taken")
    return (f'<section class="sipflow-file" data-path="{escape(path)}">'
            f"<h2>{escape(cov.shape.name)} <small>{escape(path)}: {cov.percent:.0f}%, "
            f"{cov.runs} run{'s' if cov.runs != 1 else ''}</small></h2>\n"
            + "".join(lines) + render_graph(cov, key) + "</section>")


def _lines(ids: Iterable[str], what: str) -> list[str]:
    ids = list(ids)
    return [f"<p>{escape(what)}: {escape(', '.join(ids))}</p>\n"] if ids else []
