"""``--sipflow-repeat``: a scenario item runs as a load; KPIs, SLO, progress and summary.

The item's process runs the iterations and prints a progress line (when it has a
terminal: not on an xdist worker); the KPI document rides on the report to the controller,
which prints every load item's KPIs in the summary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from ..errors import ScenarioFailed
from .keys import session_key

if TYPE_CHECKING:
    from ..engine.load import Progress

KPI_SECTION = "sipflow KPIs"
REPORT_ATTRIBUTE = "sipflow_kpi"  # on the TestReport: plain data, so it crosses xdist


def run_item(item: Any) -> None:
    """The load run of one ``SipflowItem`` (not imported: collection imports this module):
    iterations, KPIs, then the SLO (or, without one, every iteration) decides."""
    from ..engine.load import run_load
    from ..reporting.failure import render_failure
    from ..reporting.load import junit_properties, kpi_document, kpis_of, slo_lines

    session = item.config.stash[session_key]
    load = session.settings.load
    results = run_load(item.graph, session.pool, session.settings.engine, load.repeat,
                       load.rate, load.concurrency, _progress_writer(item.config))
    failed = [r for r in results if not r.passed]
    item.iterations = results
    item.result = failed[0] if failed else results[-1]
    kpis = kpis_of(results, item.graph)
    missed = slo_lines(item.graph, kpis)
    item.kpi = kpi_document(kpis, missed)
    item.user_properties.extend(junit_properties(item.kpi))
    item.add_report_section("call", KPI_SECTION, kpis.text())
    head = (f"load run of scenario {item.graph.name!r}: {len(results)} iterations "
            f"(rate {load.rate:g}/s, concurrency {load.concurrency}), {len(failed)} failed")
    if missed:
        raise ScenarioFailed(item.result, item.view.mask("\n".join(
            [f"{head}; SLO missed:", *(f"  {line}" for line in missed), "", kpis.text()])))
    if failed and item.graph.slo is None:
        first = render_failure(failed[0], item.graph,
                               ladder=item.view.ladder(session.settings.report.ladder_lines))
        raise ScenarioFailed(item.result, item.view.mask(
            f"{head} (a file without \"slo\" needs every iteration to pass); the first:\n"
            f"{first}"))


def _progress_writer(config: pytest.Config) -> "Any":
    """A callback printing the progress line, or None where no terminal shows it."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or hasattr(config, "workerinput"):
        return None

    def show(progress: "Progress") -> None:
        if capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(progress.line())
        else:
            reporter.write_line(progress.line())
    return show


class LoadSummary:
    """Registered when ``--sipflow-repeat`` is on: the KPI document onto each report (every
    process), and on the controller every load item's KPIs at the end."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item,
                                  call: pytest.CallInfo[None]) -> pytest.TestReport:
        report: pytest.TestReport = yield
        kpi = getattr(item, "kpi", None)
        if call.when == "call" and kpi is not None:
            setattr(report, REPORT_ATTRIBUTE, kpi)
        return report

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(terminalreporter.config, "workerinput"):
            return
        shown = [(r, getattr(r, REPORT_ATTRIBUTE, None))
                 for key in ("passed", "failed") for r in terminalreporter.stats.get(key, [])
                 if r.when == "call"]
        shown = [(r, kpi) for r, kpi in shown if isinstance(kpi, dict)]
        if not shown:
            return
        terminalreporter.write_sep("-", "sipflow load runs")
        for report, kpi in shown:
            terminalreporter.write_line(f"{report.nodeid}:")
            for line in str(kpi.get("text", "")).splitlines():
                terminalreporter.write_line(f"  {line}")
            for line in kpi.get("sloMissed") or ():
                terminalreporter.write_line(f"  SLO missed: {line}", red=True)


def register(config: pytest.Config) -> None:
    if config.stash[session_key].settings.load.active:
        config.pluginmanager.register(LoadSummary(), "sipflow-load")
