"""pytest entry point (``pytest11``): wires pytest's hooks to the modules that do the work."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import fixtures
from .glue import capability, coverage, hep, hooks, load, outputs, process
from .glue.collect import SipflowFile, SipflowItem, is_scenario, only_refused_files_failed
from .glue.keys import session_key
from .glue.options import add_options, report_header, settings_from_config
from .glue.session import SipflowSession


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    process.session_began()
    config.addinivalue_line("markers", "sipflow: a SIPFLOW scenario file collected by pytest-sipflow")
    config.stash[session_key] = SipflowSession(settings_from_config(config))
    config.pluginmanager.register(fixtures, "sipflow-fixtures")
    if outputs.JunitTrace.wanted(config):  # JUnit is written by the controller only
        config.pluginmanager.register(outputs.JunitTrace(), "sipflow-junit-trace")
    coverage.register(config)  # --sipflow-coverage: collects everywhere, reports on the controller
    load.register(config)  # --sipflow-repeat: KPIs onto reports, summarized on the controller
    hep.register(config)  # --sipflow-hep: each process sends the items it ran


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(session_key, None)
    if session is not None:
        session.close()
    process.session_ended()


def pytest_report_header(config: pytest.Config) -> str:
    return report_header(config.stash[session_key].settings)


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if is_scenario(file_path):
        if capability.reports_here(parent.config):
            capability.start(parent.config)  # the probe runs while pytest collects
        process.start_fork_server(parent.config)
        return SipflowFile.from_parent(parent, path=file_path)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    # A broken scenario file is a collection error, but the other files still run.
    if only_refused_files_failed(session):
        session.config.option.continue_on_collection_errors = True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    capability.skip_missing(config, items)


def pytest_report_collectionfinish(config: pytest.Config) -> str | None:
    return capability.report_line(config)


def pytest_collection_finish(session: pytest.Session) -> None:
    # Warm the pool while pytest prints its header: the first scenario then starts at once.
    sizes = [len(item.graph.instances) for item in session.items
             if isinstance(item, SipflowItem) and not capability.is_skipped(item)]
    if sizes and not session.config.option.collectonly:
        session.config.stash[session_key].pool.prestart(max(sizes))


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    # Give back agents the next item will not need (the pool is started only on use).
    session = item.config.stash[session_key]
    if nextitem is not None and session.has_pool:
        need = len(nextitem.graph.instances) if isinstance(nextitem, SipflowItem) else 0
        session.pool.trim(need)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> pytest.TestReport:
    # pcap/JSON files and HTML extras, on the process that ran the item.
    report: pytest.TestReport = yield
    if call.when == "call" and isinstance(item, SipflowItem):
        outputs.after_call(item, report)
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    capability.keep(session.config)  # also where no report line was printed (xdist workers)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    outputs.print_passed_traces(terminalreporter)
