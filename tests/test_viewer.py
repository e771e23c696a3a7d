"""The report viewer: a --sipflow-json folder of a real run turned into one HTML page."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pytest_sipflow.reporting.coverage import Coverage, FlowShape
from pytest_sipflow.reporting.viewer import main, read_results, render_page

from conftest import REPO, basic_call
from test_plugin import busy_without_branch


class Page(HTMLParser):
    """Item sections, node states, the ladder's SVG texts, outside references."""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[str] = []
        self.states: list[str] = []
        self.svg_texts: list[str] = []
        self.external: list[str] = []
        self._stack: list[str] = []
        self._svg = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and a.get("data-item"):
            self.items.append(str(a["data-item"]))
        if tag in ("script", "link", "img") or str(a.get("src") or "").startswith("http"):
            self.external.append(tag)
        self._svg += tag == "svg"
        self._stack.append(f"{tag}.{a.get('class') or ''}")

    def handle_endtag(self, tag: str) -> None:
        self._svg -= tag == "svg"
        if self._stack:
            self._stack.pop()

    def handle_data(self, data: str) -> None:
        top = self._stack[-1] if self._stack else ""
        if top == "td.state":
            self.states.append(data)
        if self._svg and top.startswith("text"):
            self.svg_texts.append(data)




def test_a_real_run_becomes_one_page(sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", basic=basic_call(), busy=busy_without_branch())
    sipflow_pytester.runpytest("--sipflow-json", "out").assert_outcomes(passed=1, failed=1)
    folder = sipflow_pytester.path / "out"
    shape = FlowShape.load(str(sipflow_pytester.path / "basic.sipflow.json"))
    coverage = Coverage()
    documents, _ = read_results(folder)
    basic = next(d for d in documents if d["item"].startswith("basic"))
    coverage.add_run(shape, {i: n["state"] for i, n in basic["nodes"].items()})
    (folder / "coverage.json").write_text(json.dumps(coverage.to_dict()))

    out = sipflow_pytester.path / "report" / "page.html"
    assert main([str(folder), "-o", str(out)]) == 0
    page = Page()
    page.feed(out.read_text())
    assert page.items == ["basic.sipflow.json::basic", "busy.sipflow.json::busy"]
    assert page.external == []
    labels = [t for t in page.svg_texts if not t.strip().isdigit()]
    for method in ("INVITE", "180 Ringing", "200 OK", "ACK", "BYE"):
        assert method in labels, labels
    assert labels.index("INVITE") < labels.index("180 Ringing") < labels.index("BYE")
    assert "486 Busy Here" in labels
    assert "failed" in page.states and "completed" in page.states
    text = out.read_text()
    assert "scenario coverage: 100%" in text and 'class="node ok"' in text
    assert "Call-ID:" in text  # the trace


def test_empty_or_missing_folder_is_a_clear_error(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope")]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "other.json").write_text('{"x": 1}')
    assert main([str(tmp_path)]) == 2
    assert "no result documents" in capsys.readouterr().err


def test_media_and_kpi_entries_are_shown() -> None:
    doc = {"item": "a.sipflow.json::a", "outcome": "passed", "duration": 1.0,
           "messages": [], "kpi": {"asr": 1.0, "p95SetupMs": 12.5},
           "media": {"alice": {"mos": 4.3}}}
    page = render_page([doc])
    assert "<th>p95SetupMs</th><td>12.5</td>" in page and "<th>mos</th><td>4.3</td>" in page


def test_runs_as_a_module(tmp_path: Path) -> None:
    doc = {"item": "a.sipflow.json::a", "outcome": "failed", "duration": 0.5,
           "failure": {"reason": "boom <b>", "expected": "x", "actual": "y"}, "messages": []}
    (tmp_path / "a.json").write_text(json.dumps(doc))
    done = subprocess.run([sys.executable, "-m", "pytest_sipflow.reporting.viewer",
                           str(tmp_path), "-o", str(tmp_path / "r.html")], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "r.html").read_text()
    assert "boom &lt;b&gt;" in html and "boom <b>" not in html
