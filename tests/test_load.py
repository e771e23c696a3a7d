"""``--sipflow-repeat``: a scenario file as a load of iterations, KPIs and the file's SLO."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from conftest import chain, command, event, instance, scenario
from pytest_sipflow.reporting import viewer


def quick_call(**top: Any) -> str:
    """A calls B, B answers, A hangs up at once: one short call per iteration."""
    nodes = [instance("a", "100"), instance("b", "200"),
             command("call", "MakeCall", "a", callId="c", targetUri="200"),
             command("bye", "Release", "a", callId="c"),
             event("in", "INCOMING", "b", callId="c", timeout=5000),
             command("answer", "Answer", "b", callId="c"),
             event("gone", "DISCONNECTED", "b", callId="c", timeout=5000)]
    return scenario(nodes, chain("a", "call", "bye") + chain("b", "in", "answer", "gone"),
                    name="quick", **top)


def test_two_hundred_iterations_at_a_set_rate(sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", quick=quick_call(slo={"asr": 1.0}))
    result = sipflow_pytester.runpytest("--sipflow-repeat", "200", "--sipflow-rate", "50",
                                        "--sipflow-concurrency", "6")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "sipflow: */200 iterations, 0 failed, *.*/s",  # the progress line, while it runs
        "*sipflow load runs*",
        "quick.sipflow.json::quick:",
        "  iterations 200 (200 passed), calls 200, answered 200, ASR 1",
        "  post-dial delay: p50 * ms, p95 * ms, p99 * ms",
        "  setup time: p50 * ms, p95 * ms, p99 * ms"])
    progress = [ln for ln in result.outlines if re.match(r"sipflow: \d+/200 iterations", ln)]
    assert progress[-1].startswith("sipflow: 200/200 iterations, 0 failed")
    rate = float(progress[-1].rsplit(", ", 1)[1][:-2])
    assert rate <= 50 * 1.2, rate  # held to the set rate (it may be slower, never faster)


def test_a_missed_slo_fails_with_expected_and_actual(sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json",
                              quick=quick_call(slo={"asr": 0.5, "p95SetupMs": 1}))
    result = sipflow_pytester.runpytest("--sipflow-repeat", "6", "--sipflow-concurrency", "2",
                                        "--sipflow-json", "out", "--junitxml", "junit.xml",
                                        "--sipflow-coverage=out", "--html", "report.html")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*load run of scenario 'quick': 6 iterations (rate 0/s, concurrency 2), 0 failed; "
        "SLO missed:",
        "*  expected p95 setup ≤ 1 ms, actual *.* ms",
        "*SLO missed: expected p95 setup ≤ 1 ms, actual *"])
    assert "expected ASR" not in result.stdout.str()  # the ASR of 1 met its 0.5
    doc = json.loads(next((sipflow_pytester.path / "out").glob("*.json")).read_text())
    kpi = doc["kpi"]
    assert kpi["summary"]["iterations"] == 6 and kpi["summary"]["asr"] == 1.0
    assert len(kpi["calls"]) == 6 and kpi["sloMissed"][0].startswith("expected p95 setup")
    props = {p.get("name"): p.get("value") for p in
             ET.parse(sipflow_pytester.path / "junit.xml").iter("property")}
    assert props["sipflow.kpi.asr"] == "1.0" and float(props["sipflow.kpi.p95SetupMs"]) > 1
    html = (sipflow_pytester.path / "report.html").read_text()
    assert "sipflow-kpi" in html and "KPIs of 6 iterations" in html  # pytest-html's extras
    # the viewer: KPIs with plots, and the coverage graph (6 runs of the file)
    assert viewer.main([str(sipflow_pytester.path / "out"), "-o", "page.html"]) == 0
    page = (sipflow_pytester.path / "page.html").read_text()
    assert 'class="sipflow-kpi"' in page and page.count('class="sipflow-plot"') == 3
    assert "expected p95 setup ≤ 1 ms" in page and 'class="coverage"' in page
    assert "quick.sipflow.json: 100%" in page


def test_without_slo_every_iteration_must_pass(sipflow_pytester: pytest.Pytester) -> None:
    nodes = [instance("a", "100"), instance("b", "200"),
             command("call", "MakeCall", "a", callId="c", targetUri="200"),
             event("in", "INCOMING", "b", callId="c"),
             command("busy", "Response", "b", callId="c", statusCode=486)]
    sipflow_pytester.makefile(".sipflow.json", busy=scenario(
        nodes, chain("a", "call") + chain("b", "in", "busy"), name="busy"))
    result = sipflow_pytester.runpytest("--sipflow-repeat", "3")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*3 iterations (rate 0/s, concurrency 1), 3 failed (a file without \"slo\" needs "
        "every iteration to pass); the first:",
        "*scenario 'busy' failed", "*486 Busy Here*",
        "  iterations 3 (0 passed), calls 3, answered 0, ASR 0"])


def test_a_bad_slo_is_a_collection_error(sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", quick=quick_call(slo={"p95SetupMS": 300}))
    result = sipflow_pytester.runpytest("--sipflow-repeat", "2")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*field 'slo.p95SetupMS': unknown SLO key; did you mean "
                                 "'p95SetupMs'?*"])


def test_mos_of_checked_media_is_a_kpi_and_an_slo(sipflow_pytester: pytest.Pytester) -> None:
    """Iterations whose media is checked give a MOS per call; ``minMos`` judges the worst."""
    doc = json.loads(quick_call(slo={"minMos": 4.0}))
    for node in doc["nodes"]:
        if node["id"] == "gone":
            node["data"]["expectMedia"] = {"received": True}
    doc["nodes"].append(event("talk", "TIMEOUT", "a", timeout=300))
    doc["edges"] = chain("a", "call", "talk", "bye") + chain("b", "in", "answer", "gone")
    sipflow_pytester.makefile(".sipflow.json", quick=json.dumps(doc))
    result = sipflow_pytester.runpytest("--sipflow-repeat", "3", "--sipflow-json", "out")
    result.assert_outcomes(passed=1)
    kpi = json.loads(next((sipflow_pytester.path / "out").glob("*.json")).read_text())["kpi"]
    assert kpi["summary"]["minMos"] is not None and kpi["summary"]["minMos"] >= 4.0, kpi
    doc["slo"] = {"minMos": 4.5}  # the model's ceiling: a real call cannot reach it
    sipflow_pytester.makefile(".sipflow.json", quick=json.dumps(doc))
    result = sipflow_pytester.runpytest("--sipflow-repeat", "3")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*expected *MOS* 4.5*actual*"])
