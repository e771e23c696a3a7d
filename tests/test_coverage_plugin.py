"""``--sipflow-coverage`` through the real plugin: table, files, fail-under, xdist merge."""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from conftest import REPO, chain, command, event, instance, scenario

SVG = "{http://www.w3.org/2000/svg}"


def guarded_call() -> str:
    """A basic call whose MakeCall has a failure branch that a good run never takes."""
    nodes = [instance("a", "100"), instance("b", "200"),
             command("call", "MakeCall", "a", callId="c", targetUri="200"),
             event("talk", "TIMEOUT", "a", timeout=50),
             command("bye", "Release", "a", callId="c"),
             event("giveup", "TIMEOUT", "a", timeout=10),
             event("in", "INCOMING", "b", callId="c", timeout=5000),
             command("answer", "Answer", "b", callId="c"),
             event("gone", "DISCONNECTED", "b", callId="c", timeout=5000)]
    edges = (chain("a", "call", "talk", "bye") + chain("b", "in", "answer", "gone")
             + [{"id": "f", "source": "call", "target": "giveup", "sourceHandle": "failure"}])
    return scenario(nodes, edges, name="guarded")


def suite(pytester: pytest.Pytester) -> None:
    pytester.makefile(".sipflow.json", guarded=guarded_call())
    shutil.copy(REPO / "scenarios" / "busy-failure-branch.sipflow.json", pytester.path)


def test_a_failure_branch_never_taken_is_reported_by_node_id(
        sipflow_pytester: pytest.Pytester) -> None:
    suite(sipflow_pytester)
    result = sipflow_pytester.runpytest("--sipflow-coverage=cov")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "*sipflow scenario coverage*",
        "Name*Nodes*Ran*Miss*Branch*Taken*Cover",
        "busy-failure-branch.sipflow.json *5 *4 *1 *1 *1 *",
        "    never ran: unexpected-answer",
        "guarded.sipflow.json *7 *6 *1 *1 *0 *",
        "    never ran: giveup",
        "    failure branch never taken: call",
        "TOTAL *12 *10 *2 *2 *1 *79%",
        "sipflow coverage written to *cov*coverage.json"])
    data = json.loads((sipflow_pytester.path / "cov" / "coverage.json").read_text())
    guarded = data["files"]["guarded.sipflow.json"]
    assert guarded["taken"] == [] and "giveup" not in guarded["ran"] and guarded["runs"] == 1
    assert data["files"]["busy-failure-branch.sipflow.json"]["taken"] == ["alice-calls-bob"]


def test_the_html_page_draws_each_graph_coloured_by_outcome(
        sipflow_pytester: pytest.Pytester) -> None:
    suite(sipflow_pytester)
    sipflow_pytester.runpytest("--sipflow-coverage=cov").assert_outcomes(passed=2)
    page = (sipflow_pytester.path / "cov" / "coverage.html").read_text()
    svgs = [ET.fromstring("<svg" + part[:part.index("</svg>") + 6])
            for part in page.split("<svg")[1:]]
    assert len(svgs) == 2
    outcomes = {}
    for svg in svgs:
        for g in svg.iter(f"{SVG}g"):
            outcomes[g.get("data-node")] = g.get("class")
    assert outcomes["call"] == "node untaken" and outcomes["giveup"] == "node never"
    assert outcomes["alice-calls-bob"] == "node ok" and outcomes["talk"] == "node ok"
    assert outcomes["unexpected-answer"] == "node never" and outcomes["a"] == "node instance"
    lines = [line for svg in svgs for line in svg.iter(f"{SVG}line")]
    failure = [line for line in lines if "failure" in (line.get("class") or "")]
    assert len(failure) == 2 and {line.get("stroke") for line in failure} == {"#c62828"}
    assert sorted(line.get("opacity") for line in failure) == ["0.45", "1"]  # untaken, taken


def test_fail_under_fails_the_run(sipflow_pytester: pytest.Pytester) -> None:
    suite(sipflow_pytester)
    result = sipflow_pytester.runpytest("--sipflow-coverage-fail-under", "90",
                                        "--sipflow-coverage=cov")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["FAIL sipflow coverage 78.57% is under the required 90% "
                                 "(--sipflow-coverage-fail-under)"])
    ok = sipflow_pytester.runpytest("--sipflow-coverage-fail-under", "75",
                                    "--sipflow-coverage=cov")
    assert ok.ret == pytest.ExitCode.OK


def test_fail_under_alone_is_a_usage_error(sipflow_pytester: pytest.Pytester) -> None:
    result = sipflow_pytester.runpytest("--sipflow-coverage-fail-under", "90")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--sipflow-coverage-fail-under needs --sipflow-coverage*"])


def test_workers_coverage_merges_to_the_same_numbers(sipflow_pytester: pytest.Pytester) -> None:
    suite(sipflow_pytester)
    shutil.copy(REPO / "scenarios" / "ringing.sipflow.json", sipflow_pytester.path)
    (sipflow_pytester.path / "guarded2.sipflow.json").write_text(guarded_call())
    one = sipflow_pytester.runpytest("--sipflow-coverage=one")
    one.assert_outcomes(passed=4)
    two = sipflow_pytester.runpytest_subprocess("-n", "2", "--sipflow-coverage=two")
    two.assert_outcomes(passed=4)
    two.stdout.fnmatch_lines(["*sipflow scenario coverage*", "TOTAL *"])
    a, b = (json.loads((sipflow_pytester.path / d / "coverage.json").read_text())
            for d in ("one", "two"))
    assert a == b and len(a["files"]) == 4
    assert [ln for ln in one.outlines if ln.startswith("TOTAL")] == \
        [ln for ln in two.outlines if ln.startswith("TOTAL")]


CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (./install.sh)")
def test_a_real_browser_draws_the_outcome_colours(sipflow_pytester: pytest.Pytester) -> None:
    """Headless Chromium renders coverage.html: the screenshot shows the fills of a node
    that ran, one that never ran and one whose failure branch was never taken."""
    from support.png import colours

    from pytest_sipflow.reporting.coverage_html import FILL

    suite(sipflow_pytester)
    sipflow_pytester.runpytest("--sipflow-coverage=cov").assert_outcomes(passed=2)
    page, shot = sipflow_pytester.path / "cov" / "coverage.html", sipflow_pytester.path / "shot.png"
    subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", f"--user-data-dir={sipflow_pytester.path / 'profile'}",
                    "--hide-scrollbars", "--window-size=1100,1500", f"--screenshot={shot}",
                    page.as_uri()], check=True, capture_output=True, timeout=120)
    seen = colours(shot)

    def pixels(outcome: str) -> int:
        return seen[tuple(int(FILL[outcome][i:i + 2], 16) for i in (1, 3, 5))]

    legend = pixels("failed")  # no node failed: only the legend's swatch has this fill
    assert legend > 0, "the legend was not drawn"
    # every node box is larger than a swatch; 6 nodes ran, 1 never ran, 1 branch untaken
    assert pixels("ok") > 6 * legend and pixels("instance") > 4 * legend
    assert pixels("never") > 2 * legend and pixels("untaken") > 1.5 * legend
