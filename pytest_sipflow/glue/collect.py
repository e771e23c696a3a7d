"""Collection of ``*.sipflow.json`` files: one pytest item per file (or per combination).

The loader (pydantic), the engine and the reports are imported when the first scenario
file is collected or run, so a pytest run without scenarios pays nothing for them.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from ..errors import ScenarioFailed, ScenarioFormatError, SipflowError
from ..format.worker import worker_index
from .keys import TRACE_SECTION, html_wanted, session_key
from .capture import keep_capture, start_capture

if TYPE_CHECKING:
    from ..engine.events import ExecutionEvent
    from ..engine.result import ScenarioResult
    from ..format.graph import Graph, LoadOptions
    from ..reporting.view import ItemView

SUFFIX = ".sipflow.json"


def is_scenario(path: Path) -> bool:
    return path.name.endswith(SUFFIX)


class SipflowFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        from ..format import graph as graph_mod

        try:
            graphs = graph_mod.load_all(self.path, _load_options(self.config))
        except ScenarioFormatError as exc:
            self.config.stash[session_key].refused_files.add(self.nodeid)
            exc.path = _display_path(self.path, self.config.rootpath)
            raise
        for graph in graphs:  # one per combination of a "parametrize"
            name = f"{graph.name}[{graph.param_id}]" if graph.params else graph.name
            item = SipflowItem.from_parent(self, name=name, graph=graph)
            item.add_marker("sipflow")
            _register_markers(self.config, graph.markers)
            for marker in graph.markers:
                item.add_marker(marker)
            yield item

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        if isinstance(excinfo.value, ScenarioFormatError) and not _full_trace(self.config):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class SipflowItem(pytest.Item):
    def __init__(self, *, graph: "Graph", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.graph = graph
        self.result: "ScenarioResult | None" = None
        self.params: dict[str, str] = dict(graph.params)  # as request.node.callspec.params
        self.rtp_frames: list[Any] = []  # --sipflow-pcap: the call's RTP/RTCP from the wire
        self._view: "ItemView | None" = None
        self.iterations: "list[ScenarioResult]" = []  # a load run's (--sipflow-repeat)
        self.kpi: "dict[str, Any] | None" = None  # its KPI document (reporting.load)

    @property
    def runs(self) -> "list[ScenarioResult]":
        """Every run of the file in this item: the load run's iterations, or the one run."""
        return self.iterations or ([self.result] if self.result is not None else [])

    def runtest(self) -> None:
        from ..engine.runner import run_scenario

        session = self.config.stash[session_key]
        if session.settings.load.active:  # --sipflow-repeat: the file as a load
            from .load import run_item

            return run_item(self)
        engine = replace(session.settings.engine, record_dir=self._record_dir(),
                         keep_trace=not self._trace_read_live())
        capture = start_capture(self)
        try:
            self.result = run_scenario(self.graph, session.pool, engine,
                                       self._dispatch if self._listened() else None)
        finally:
            keep_capture(self, capture)
        reports = session.settings.report
        if self.result.media:  # JUnit properties (only scenarios that checked media)
            from ..reporting.results_json import media_properties

            self.user_properties.extend(media_properties(self.result.media))
        if self.result.passed and not reports.wants_trace(passed=True):
            return  # nothing rendered, nothing of the reports imported
        from ..reporting.failure import render_failure

        view = self.view
        if reports.wants_trace(self.result.passed):
            self.add_report_section("call", TRACE_SECTION, view.trace())
        if not self.result.passed:
            text = render_failure(self.result, self.graph,
                                  ladder=view.ladder(reports.ladder_lines))
            raise ScenarioFailed(self.result, view.mask(text))

    def _record_dir(self) -> str | None:
        """Recordings without a filePath: ``<basetemp>/sipflow-audio/<item>/``; None (not
        even pytest's temp folder made) when the scenario records nothing."""
        if not any(s.name in ("RecordAudio", "DTMFReceived") for s in self.graph.steps.values()):
            return None
        factory = getattr(self.config, "_tmp_path_factory", None)
        base = factory.getbasetemp() if factory is not None else Path(tempfile.gettempdir())
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", self.nodeid.replace("::", "__")).strip("_")
        return str(base / "sipflow-audio" / (name[:180] or "item"))

    @property
    def view(self) -> "ItemView":
        """The run read for the reports (records, columns, secrets), made once, on demand."""
        from ..reporting.view import ItemView

        assert self.result is not None, "the item has not run"
        if self._view is None or self._view.result is not self.result:
            registrar = self.config.stash[session_key].settings.engine.registrar
            self._view = ItemView.of(self.result, self.graph, registrar)
        return self._view

    def _trace_read_live(self) -> bool:
        """Whether anything reads a passing run's SIP messages (reports, HEP, an
        action-log hook); if nothing does, the agents keep them and only a failure (or a
        header check) fetches them."""
        reports = self.config.stash[session_key].settings.report
        return (reports.trace == "all" or reports.writes_files or reports.hep is not None
                or html_wanted(self.config)
                or bool(self.config.hook.pytest_sipflow_action_log.get_hookimpls()))

    def _listened(self) -> bool:
        """Whether any plugin or conftest implements an execution-event hook: if none
        does, the ~34 events of a call are kept in the result but not dispatched."""
        hook = self.config.hook
        return any(h.get_hookimpls() for h in (hook.pytest_sipflow_node_state,
                                                hook.pytest_sipflow_action_log,
                                                hook.pytest_sipflow_scenario_state))

    def _dispatch(self, event: "ExecutionEvent") -> None:
        hook = self.config.hook
        if event.kind == "node-state":
            hook.pytest_sipflow_node_state(item=self, event=event)
        elif event.kind == "action-log":
            hook.pytest_sipflow_action_log(item=self, event=event)
        else:
            hook.pytest_sipflow_scenario_state(item=self, event=event)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> Any:
        if isinstance(excinfo.value, SipflowError) and not _full_trace(self.config):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"sipflow scenario: {self.name}"


def only_refused_files_failed(session: pytest.Session) -> bool:
    """True when every collection error so far is a refused scenario file.

    Those files are reported as errors, but need not stop the other files from running.
    """
    refused = session.config.stash[session_key].refused_files
    return bool(refused) and session.testsfailed == len(refused)


def _load_options(config: pytest.Config) -> "LoadOptions":
    """Environment, xdist worker number and registrar setting, as loading needs them."""
    from ..format.graph import LoadOptions

    settings = config.stash[session_key].settings
    worker_id = getattr(config, "workerinput", {}).get("workerid")
    return LoadOptions(env=os.environ, worker=worker_index(worker_id),
                       registrar_configured=bool(settings.engine.registrar))


def _register_markers(config: pytest.Config, markers: list[str]) -> None:
    """Markers a file declares are registered, so pytest raises no unknown-mark warning."""
    known = {line.split(":")[0].split("(")[0].strip() for line in config.getini("markers")}
    for name in markers:
        if name not in known:
            config.addinivalue_line("markers", f"{name}: declared by a sipflow scenario file")
            known.add(name)


def _display_path(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _full_trace(config: pytest.Config) -> bool:
    session = config.stash.get(session_key, None)
    return bool(session and session.settings.full_trace)
