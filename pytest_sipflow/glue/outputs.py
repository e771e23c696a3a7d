"""What an item leaves besides pass/fail: trace section, pcap and JSON files, HTML extras.

Per-item outputs are made by the process that ran the item (an xdist worker writes its own
files); what reaches the controller is plain data on the report (sections, ``extras``).
Nothing of ``reporting`` is imported here at module level: an item costs nothing extra
unless a trace is shown or a file, pcap or HTML report is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from .keys import TRACE_SECTION, TRACE_TITLE, html_wanted, session_key

if TYPE_CHECKING:
    from .collect import SipflowItem



def after_call(item: "SipflowItem", report: pytest.TestReport) -> None:
    """Write the item's pcap and JSON files and add its HTML extras (``makereport``)."""
    settings = item.config.stash[session_key].settings.report
    html = html_wanted(item.config)
    if item.result is None or not (settings.writes_files or html):
        return
    view = item.view
    try:
        if settings.pcap_dir:
            view.write_pcap(settings.pcap_dir, item.nodeid, item.rtp_frames)
        if settings.json_dir:
            view.write_json(settings.json_dir, item.nodeid, outcome=report.outcome,
                            duration=report.duration,
                            extra={"kpi": item.kpi} if item.kpi is not None else None)
    except OSError as exc:
        item.warn(pytest.PytestWarning(f"sipflow: could not write a result file: {exc}"))
    if html:
        from pytest_html import extras  # present: the html plugin is loaded

        fragment = view.html(f"SIP ladder and trace: {item.name}")
        if item.kpi is not None:  # a load run: its KPIs and plots first
            from ..reporting.load import kpi_html

            fragment = kpi_html(item.kpi, f"KPIs of {len(item.runs)} iterations") + fragment
        report.extras = [*getattr(report, "extras", []), extras.html(fragment)]


def trace_of(report: pytest.TestReport) -> str | None:
    for title, content in report.sections:
        if title == TRACE_TITLE:
            return content
    return None


class FailureText:
    """A failure's text for the terminal; ``str()`` adds the SIP trace.

    JUnit's ``<failure>`` element holds ``str(report.longrepr)``, the terminal prints
    ``toterminal``: so the JUnit record carries the full trace (whatever ``junit_logging``
    says) while the terminal shows it once, as its own section.
    """

    def __init__(self, text: str, trace: str) -> None:
        self.text = text
        self.trace = trace

    def toterminal(self, out: Any) -> None:
        out.line(self.text)

    def __str__(self) -> str:
        return f"{self.text}\n\n{TRACE_SECTION}:\n{self.trace}"


class JunitTrace:
    """Registered where JUnit XML is written (never on an xdist worker): a failed item's
    trace goes into its ``<failure>`` text, whatever ``junit_logging`` says."""

    @staticmethod
    def wanted(config: pytest.Config) -> bool:
        return bool(getattr(config.option, "xmlpath", None)) and not hasattr(config, "workerinput")

    @pytest.hookimpl(tryfirst=True)  # before the JUnit writer reads the report
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and report.failed and isinstance(report.longrepr, str):
            trace = trace_of(report)
            if trace is not None:
                report.longrepr = FailureText(report.longrepr, trace)  # type: ignore[assignment]


def print_passed_traces(terminalreporter: Any) -> None:
    """``--sipflow-trace=all``: passed items' traces (pytest shows only failures' sections)."""
    config = terminalreporter.config
    if hasattr(config, "workerinput") or terminalreporter.hasopt("P"):
        return  # -rP already prints every passed item's sections
    session = config.stash.get(session_key, None)
    if session is None or session.settings.report.trace != "all":
        return
    shown = [(r, trace_of(r)) for r in terminalreporter.stats.get("passed", [])
             if r.when == "call"]
    shown = [(r, trace) for r, trace in shown if trace is not None]
    if not shown:
        return
    terminalreporter.write_sep("=", "sipflow SIP traces of passed items")
    for report, trace in shown:
        terminalreporter.write_sep("_", report.head_line or report.nodeid)
        terminalreporter.line(trace)
