"""Load-run KPIs from SIP records, the SLO object and its check, the SVG plots."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest

from pytest_sipflow.errors import ScenarioFormatError
from pytest_sipflow.reporting.kpi import (Iteration, Kpis, check_slo, parse_slo, percentile)
from pytest_sipflow.reporting.kpi_svg import histogram, rate_plot

from sipflows import BASIC, BUSY, BUSY_CALL_ID, records

REGISTER = [("alice", "kamailio", "REGISTER sip:127.0.0.1 SIP/2.0", "1 REGISTER", 0.0),
            ("kamailio", "alice", "SIP/2.0 401 Unauthorized", "1 REGISTER", 1.0),
            ("alice", "kamailio", "REGISTER sip:127.0.0.1 SIP/2.0", "2 REGISTER", 2.0),
            ("kamailio", "alice", "SIP/2.0 200 OK", "2 REGISTER", 9.7)]


def shifted(recs: list[dict[str, Any]], seconds: float) -> list[dict[str, Any]]:
    return [dict(r, t=r["t"] + seconds) for r in recs]


def basic(i: int, answer_ms: float = 500.0) -> list[dict[str, Any]]:
    flow = [(a, b, s, c, answer_ms if s == "SIP/2.0 200 OK" and c == "1 INVITE" else ms)
            for a, b, s, c, ms in BASIC]
    return shifted(records(flow, f"call-{i}@h"), i * 0.25)


def load(n: int = 20) -> list[Iteration]:
    """n basic calls, 4 per second, answer after 100..(100+10n) ms; then one busy call."""
    its = [Iteration.of(i, True, basic(i, 100.0 + 10 * i)) for i in range(n)]
    its.append(Iteration.of(n, False, shifted(records(BUSY, BUSY_CALL_ID), n * 0.25)))
    return its


def test_caller_view_times_and_asr() -> None:
    kpis = Kpis.of(load(20))
    assert (kpis.iterations, kpis.passed, len(kpis.calls), kpis.answered) == (21, 20, 21, 20)
    assert kpis.asr == pytest.approx(20 / 21)
    assert kpis.setup_ms[0] == pytest.approx(100.3)  # alice's INVITE to her receiving the 200
    assert set(round(p, 1) for p in kpis.pdd_ms) == {2.3}
    summary = kpis.summary()
    assert summary["p50SetupMs"] == pytest.approx(195.3, abs=0.1)
    assert summary["p99SetupMs"] <= 290.3 and summary["p95SetupMs"] >= summary["p50SetupMs"]
    assert summary["minMos"] is None and summary["p50RegisterMs"] is None
    assert "ASR 0.9524" in kpis.text() and "setup time: p50 195.3 ms" in kpis.text()


def test_registration_time_counts_the_challenge() -> None:
    kpis = Kpis.of([Iteration.of(0, True, records(REGISTER, "reg@h", instances=("alice",)),
                                 mos=4.1)])
    assert kpis.register_ms == [pytest.approx(10.0)]  # first REGISTER tx to the 200 rx
    assert kpis.calls == [] and kpis.asr is None and kpis.summary()["minMos"] == 4.1


def test_percentile() -> None:
    assert percentile([], 95) is None and percentile([7.0], 99) == 7.0
    assert percentile(range(1, 101), 50) == pytest.approx(50.5)
    assert percentile(range(1, 101), 95) == pytest.approx(95.05)


def test_slo_check_says_expected_and_actual() -> None:
    kpis = Kpis.of(load(20))
    assert check_slo(parse_slo({"asr": 0.9, "p95SetupMs": 1000}, "f"), kpis) == []
    missed = check_slo(parse_slo({"asr": 0.99, "p95SetupMs": 1, "p50PddMs": 50,
                                  "minMos": 4.0, "p95RegisterMs": 100}, "f"), kpis)
    assert missed[0] == "expected ASR ≥ 0.99, actual 0.9524 (20 of 21 calls answered)"
    assert missed[1].startswith("expected p95 setup ≤ 1 ms, actual 2")
    assert missed[1].endswith(" ms")
    assert missed[2] == "expected p95 registration time ≤ 100 ms, actual: nothing measured"
    assert missed[3].startswith("expected MOS ≥ 4, actual: no MOS measured")
    assert len(missed) == 4  # the PDD of 2.3 ms met its 50 ms


def test_unknown_and_bad_slo_keys_are_refused_with_a_hint() -> None:
    with pytest.raises(ScenarioFormatError) as info:
        parse_slo({"p95SetupMS": 300, "asr": 1.5, "latency": 3}, "load.sipflow.json")
    text = str(info.value)
    assert "load.sipflow.json" in text
    assert "field 'slo.p95SetupMS': unknown SLO key; did you mean 'p95SetupMs'?" in text
    assert "field 'slo.asr'" in text and "field 'slo.latency': unknown SLO key; known:" in text
    with pytest.raises(ScenarioFormatError, match='"slo" is an object'):
        parse_slo([0.99], "f")


class Bars(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.bars: list[dict[str, str | None]] = []
        self.titles: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "rect" and "bar" in str(a.get("class")):
            self.bars.append(a)
        self._in_title = tag == "title"

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.titles.append(data)
            self._in_title = False


def test_histogram_counts_every_sample() -> None:
    parser = Bars()
    parser.feed(histogram([1.0, 2.0, 2.5, 10.0], bins=3))
    assert len(parser.bars) == 3
    counts = [int(t.rsplit(": ", 1)[1]) for t in parser.titles]
    assert counts == [3, 0, 1]
    heights = [float(b["height"] or 0) for b in parser.bars]
    assert heights[0] == max(heights) and heights[1] == 0.0


def test_rate_plot_counts_calls_per_second() -> None:
    kpis = Kpis.of(load(20))  # 21 calls at 4 per second: 4, 4, 4, 4, 4, 1
    parser = Bars()
    parser.feed(rate_plot(kpis.calls))
    started = [t for t in parser.titles if "started" in t]
    assert started[0] == "second 0: 4 started, 4 answered"
    assert started[-1] == "second 5: 1 started, 0 answered"
    assert len(started) == 6
    assert "<svg" in rate_plot([]) and "0 calls" in rate_plot([])
