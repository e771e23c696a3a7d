"""One self-contained HTML page from a ``--sipflow-json`` directory, without pytest-html.

``python -m pytest_sipflow.reporting.viewer RESULTS_DIR -o report.html``: a summary table,
then per item its outcome, failure, node states, SVG ladder and SIP trace (``html.py``),
its ``media`` entries and a load run's ``kpi`` (table and plots); a ``coverage.json``
(``Coverage.to_dict()``) in the directory adds the coverage graphs. No script, no links out.
"""

from __future__ import annotations

import argparse
import json
import sys
from html import escape
from pathlib import Path
from typing import Any, Mapping, Sequence

from .coverage import Coverage
from .coverage_html import render_graph
from .html import render_html
from .load import kpi_html

COLOR = {"passed": "#1a7f37", "failed": "#c62828", "error": "#c62828", "skipped": "#b7791f"}
STYLE = ("body{font-family:sans-serif;margin:1em 2em}table{border-collapse:collapse}"
         "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left;font-size:13px}"
         "section.item{border-top:2px solid #ddd;margin-top:1.5em}pre{white-space:pre-wrap}")


def read_results(directory: str | Path) -> tuple[list[dict[str, Any]], Coverage | None]:
    """The result documents (sorted by item) and the coverage, if the directory has one.
    Files that are not result documents are ignored, so other outputs may share the folder."""
    documents, coverage = [], None
    for path in sorted(Path(directory).glob("*.json")):
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(value, dict):
            continue
        if "item" in value and "outcome" in value:
            documents.append(value)
        elif isinstance(value.get("files"), dict):
            coverage = Coverage.from_dict(value) if coverage is None else coverage
    documents.sort(key=lambda d: str(d["item"]))
    return documents, coverage


def render_page(documents: Sequence[Mapping[str, Any]], coverage: Coverage | None = None,
                title: str = "sipflow results") -> str:
    counts: dict[str, int] = {}
    for doc in documents:
        counts[str(doc["outcome"])] = counts.get(str(doc["outcome"]), 0) + 1
    tally = ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "no items"
    rows = "".join(
        f'<tr><td><a href="#item-{i}">{escape(str(d["item"]))}</a></td>'
        f"<td>{_badge(str(d['outcome']))}</td><td>{_number(d.get('duration'))} s</td>"
        f"<td>{escape(_reason(d))}</td></tr>" for i, d in enumerate(documents))
    parts = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8">',
             f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{escape(title)}</h1><p>{escape(tally)}</p>",
             '<table class="summary"><tr><th>item</th><th>outcome</th><th>duration</th>'
             f"<th>failure</th></tr>{rows}</table>"]
    if coverage is not None:
        parts.append(_coverage(coverage))
    parts += [_item(i, d) for i, d in enumerate(documents)]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _badge(outcome: str) -> str:
    return (f'<b class="outcome {escape(outcome)}" style="color:{COLOR.get(outcome, "#333")}">'
            f"{escape(outcome)}</b>")


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "?"


def _reason(doc: Mapping[str, Any]) -> str:
    failure = doc.get("failure")
    return str(failure.get("reason", "")) if isinstance(failure, Mapping) else ""


def _item(index: int, doc: Mapping[str, Any]) -> str:
    out = [f'<section class="item" id="item-{index}" data-item="{escape(str(doc["item"]))}">',
           f"<h2>{escape(str(doc['item']))} {_badge(str(doc['outcome']))}</h2>",
           f"<p>scenario {escape(str(doc.get('scenario', '')))}, state "
           f"{escape(str(doc.get('state', '')))}, {_number(doc.get('duration'))} s</p>"]
    failure = doc.get("failure")
    if isinstance(failure, Mapping):
        lines = [f"{k}: {failure[k]}" for k in ("reason", "node", "instance", "name",
                                                "expected", "actual") if failure.get(k)]
        lines += [str(line) for line in failure.get("detail") or ()]
        out.append(f'<pre class="failure" style="color:#c62828">{escape(chr(10).join(lines))}'
                   "</pre>")
    out.append(_nodes(doc.get("nodes") or {}))
    kpi = doc.get("kpi")
    if isinstance(kpi, Mapping) and isinstance(kpi.get("summary"), Mapping):
        out.append(kpi_html(kpi, "KPIs of the load run"))  # table and plots
    elif kpi:
        out.append(f"<h3>kpi</h3>{_table(kpi)}")
    if doc.get("media"):
        out.append(f"<h3>media</h3>{_table(doc['media'])}")
    messages = doc.get("messages") or []
    try:
        out.append(render_html(messages, f"SIP ladder and trace ({len(messages)} records)",
                               instances=list(doc.get("paths") or {}), last=None))
    except (KeyError, TypeError, ValueError):  # messages not in the record shape
        out.append(f"<pre>{escape(json.dumps(messages, indent=1))}</pre>")
    out.append("</section>")
    return "\n".join(out)


def _nodes(nodes: Mapping[str, Any]) -> str:
    if not nodes:
        return ""
    rows = []
    for node_id, n in nodes.items():
        took = (f"{(n['ended'] - n['started']) * 1000:.0f} ms"
                if isinstance(n.get("started"), (int, float))
                and isinstance(n.get("ended"), (int, float)) else "")
        rows.append(f"<tr><td>{escape(node_id)}</td><td>{escape(str(n.get('instance', '')))}"
                    f"</td><td>{escape(str(n.get('name', '')))}</td>"
                    f'<td class="state">{escape(str(n.get("state", "")))}</td><td>{took}</td>'
                    f"<td>{escape(str(n.get('message', '')))}</td></tr>")
    return ('<table class="nodes"><tr><th>node</th><th>instance</th><th>name</th>'
            "<th>state</th><th>took</th><th>message</th></tr>" + "".join(rows) + "</table>")


def _table(value: Any) -> str:
    """A JSON value as nested tables (media stats, KPIs): keys left, values right."""
    if isinstance(value, Mapping):
        return ("<table>" + "".join(f"<tr><th>{escape(str(k))}</th><td>{_table(v)}</td></tr>"
                                    for k, v in value.items()) + "</table>")
    if isinstance(value, list):
        return "<br>".join(_table(v) for v in value)
    return escape("" if value is None else str(value))


def _coverage(coverage: Coverage) -> str:
    graphs = "".join(f'<h3>{escape(path)}: {cov.percent:.0f}%</h3>{render_graph(cov, f"c{i}")}'
                     for i, (path, cov) in enumerate(sorted(coverage.files.items())))
    return (f'<section class="coverage"><h2>scenario coverage: {coverage.percent:.0f}%</h2>'
            f"<pre>{escape(coverage.table())}</pre>{graphs}</section>")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pytest_sipflow.reporting.viewer",
                                     description="One HTML page from a --sipflow-json folder.")
    parser.add_argument("results", help="the folder given to --sipflow-json")
    parser.add_argument("-o", "--output", help="the HTML file (default RESULTS/report.html)")
    parser.add_argument("--title", default="sipflow results")
    args = parser.parse_args(argv)
    if not Path(args.results).is_dir():
        print(f"error: {args.results} is not a folder; pass the --sipflow-json folder",
              file=sys.stderr)
        return 2
    documents, coverage = read_results(args.results)
    if not documents:
        print(f"error: no result documents in {args.results}; run pytest with "
              f"--sipflow-json {args.results} first", file=sys.stderr)
        return 2
    output = Path(args.output or Path(args.results) / "report.html")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_page(documents, coverage, args.title), encoding="utf-8")
    print(f"{output}: {len(documents)} items")
    return 0


if __name__ == "__main__":
    sys.exit(main())
