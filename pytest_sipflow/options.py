"""The ``sipflow`` option group: each setting is a CLI option and an ini key with one help text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pytest

from .engine.settings import EngineSettings
from .ports import PortPlan, worker_index
from .session import Settings


@dataclass(frozen=True)
class Option:
    name: str  # ini key; the CLI flag is --<name with - for _>
    type: Callable[[str], Any]
    default: Any
    help: str
    metavar: str = ""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def _bool(text: str) -> bool:
    return str(text).strip().lower() in ("1", "true", "yes", "on")


OPTIONS = (
    Option("sipflow_port_base", int, 5060, "first SIP port; agents take base, base+2, ... "
           "(each xdist worker gets its own block)", "PORT"),
    Option("sipflow_port_range", int, 400, "ports in one worker's SIP block (every second one "
           "is used, so RANGE/2 agents)", "RANGE"),
    Option("sipflow_rtp_port_base", int, 20000, "first RTP port; each agent gets 20 ports "
           "beside its SIP port", "PORT"),
    Option("sipflow_event_timeout", float, 10000.0, "timeout in ms of nodes that set none "
           "(the spec's default is 10000)", "MS"),
    Option("sipflow_scenario_timeout", float, 60000.0, "deadline in ms of a whole scenario "
           "whose file sets no \"timeout\"", "MS"),
)
FULL_TRACE_HELP = "show internal tracebacks with sipflow failures (also on with --fulltrace)"


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("sipflow", "SIP scenario testing (pytest-sipflow)")
    for opt in OPTIONS:
        group.addoption(opt.flag, dest=opt.name, type=opt.type, default=None, metavar=opt.metavar,
                        help=f"{opt.help} (default {opt.default:g})")
        parser.addini(opt.name, opt.help, default=str(opt.default))
    group.addoption("--sipflow-full-trace", dest="sipflow_full_trace", action="store_true",
                    default=None, help=FULL_TRACE_HELP)
    parser.addini("sipflow_full_trace", FULL_TRACE_HELP, type="bool", default=False)


def _value(config: pytest.Config, opt: Option) -> Any:
    cli = config.getoption(opt.name)
    if cli is not None:
        return cli
    try:
        return opt.type(config.getini(opt.name))
    except ValueError:
        raise pytest.UsageError(f"ini option {opt.name} = {config.getini(opt.name)!r}: "
                                f"expected a number") from None


def settings_from_config(config: pytest.Config) -> Settings:
    values = {opt.name: _value(config, opt) for opt in OPTIONS}
    workerinput = getattr(config, "workerinput", None)
    worker = worker_index(workerinput["workerid"]) if workerinput else worker_index()
    plan = PortPlan(int(values["sipflow_port_base"]), int(values["sipflow_port_range"]),
                    int(values["sipflow_rtp_port_base"]), worker)
    try:
        plan.check()
    except ValueError as exc:
        raise pytest.UsageError(f"sipflow ports: {exc}") from None
    for name in ("sipflow_event_timeout", "sipflow_scenario_timeout"):
        if values[name] < 0:
            raise pytest.UsageError(f"{name} must not be negative")
    full = config.getoption("sipflow_full_trace")
    full_trace = bool(full) if full is not None else bool(config.getini("sipflow_full_trace"))
    full_trace = full_trace or bool(config.getoption("fulltrace", False))
    engine = EngineSettings(event_timeout_ms=values["sipflow_event_timeout"],
                            scenario_timeout_ms=values["sipflow_scenario_timeout"])
    return Settings(plan, engine, full_trace)


def report_header(settings: Settings) -> str:
    e = settings.engine
    return (f"sipflow: {settings.ports.describe()}; event timeout {e.event_timeout_ms:g} ms, "
            f"scenario timeout {e.scenario_timeout_ms:g} ms"
            + ("; full trace" if settings.full_trace else ""))
