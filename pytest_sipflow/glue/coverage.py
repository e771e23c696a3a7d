"""``--sipflow-coverage``: which nodes of each scenario file ran, which failure branches.

Every process that runs items collects; an xdist worker hands its coverage to the
controller in ``workeroutput`` (the pytest-xdist way), the controller merges, prints the
table, writes ``coverage.json`` and ``coverage.html`` and applies the fail-under.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Mapping

import pytest

from .keys import session_key

if TYPE_CHECKING:
    from ..reporting.coverage import FlowShape
    from .collect import SipflowItem

OUTPUT_KEY = "sipflow_coverage"  # in config.workeroutput


class CoverageCollector:
    """Registered on every process when coverage is asked for; reports on the controller."""

    def __init__(self, config: pytest.Config) -> None:
        from ..reporting.coverage import Coverage

        self.config = config
        self.coverage = Coverage()
        self.shapes: dict[str, FlowShape] = {}
        self.failure: str | None = None
        self.written: list[str] = []
        self.is_worker = hasattr(config, "workerinput")

    def add(self, item: "SipflowItem", states: Mapping[str, str]) -> None:
        """One run of the item's file (a load run adds one per iteration)."""
        self.coverage.add_run(self._shape(item), states)

    def _shape(self, item: "SipflowItem") -> "FlowShape":
        from ..reporting.coverage import FlowShape

        key = _relative(str(item.path), str(self.config.rootpath))
        if key not in self.shapes:
            with open(item.path, encoding="utf-8-sig") as handle:
                self.shapes[key] = FlowShape.from_document(json.load(handle), key)
        return self.shapes[key]

    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> None:
        from .collect import SipflowItem

        if call.when == "call" and isinstance(item, SipflowItem):
            for result in item.runs:
                self.add(item, result.node_states())

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist controller: a worker's coverage arrives when it ends."""
        data = getattr(node, "workeroutput", {}).get(OUTPUT_KEY)
        if data:
            self.coverage.merge(data)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.is_worker:
            self.config.workeroutput[OUTPUT_KEY] = self.coverage.to_dict()  # type: ignore[attr-defined]
            return
        from ..reporting.coverage import fail_under

        settings = self.config.stash[session_key].settings.report
        self._write(settings.coverage_dir)
        self.failure = fail_under(self.coverage, settings.coverage_fail_under)
        if self.failure and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def _write(self, directory: str | None) -> None:
        if not directory or not self.coverage.files:
            return
        from ..reporting.coverage_html import render_page

        try:
            os.makedirs(directory, exist_ok=True)
            for name, text in (("coverage.json", json.dumps(self.coverage.to_dict(), indent=1)),
                               ("coverage.html", render_page(self.coverage))):
                path = os.path.join(directory, name)
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(text + ("\n" if name.endswith(".json") else ""))
                self.written.append(path)
        except OSError as exc:
            self.failure = f"sipflow coverage: could not write {directory}: {exc}"

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        terminalreporter.write_sep("-", "sipflow scenario coverage")
        if not self.coverage.files:
            terminalreporter.write_line("no scenario file ran")
        else:
            terminalreporter.write_line(self.coverage.table())
        for path in self.written:
            terminalreporter.write_line(f"sipflow coverage written to {path}")
        if self.failure:
            terminalreporter.write_line(f"FAIL {self.failure}", red=True, bold=True)


def _relative(path: str, root: str) -> str:
    try:
        return os.path.relpath(path, root) if os.path.commonpath([path, root]) == root else path
    except ValueError:
        return path


PLUGIN_NAME = "sipflow-coverage"


def register(config: pytest.Config) -> None:
    """Register the collector when ``--sipflow-coverage`` is on (every process)."""
    if config.stash[session_key].settings.report.coverage_dir:
        config.pluginmanager.register(CoverageCollector(config), PLUGIN_NAME)
