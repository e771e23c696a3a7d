"""The ``sipflow`` option group: each setting is a CLI option and an ini key with one help text."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from ..agent.ports import PortPlan
from ..core.settings import EngineSettings, TlsSettings
from ..format.worker import worker_index
from ..sip import LOOPBACK, TRANSPORT_PORTS
from ..sip.address import split_address
from .session import LoadSettings, ReportSettings, Settings


TRACE_CHOICES = ("failed", "all", "none")


def _bool(text: str) -> bool:
    return str(text).strip().lower() in ("1", "true", "yes", "on")


def _transport(text: str) -> str:
    value = str(text).strip().upper()
    if value not in TRANSPORT_PORTS:
        raise ValueError(f"{text!r} is not one of udp, tcp, tls")
    return value


def _address(text: str) -> str:
    return str(ipaddress.ip_address(str(text).strip()))


def _trace(text: str) -> str:
    value = str(text).strip().lower()
    if value not in TRACE_CHOICES:
        raise ValueError(f"{text!r} is not one of {', '.join(TRACE_CHOICES)}")
    return value


def _count(text: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ValueError("expected a whole number") from None
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _percent(text: str) -> float:
    value = float(str(text).strip())
    if not 0 <= value <= 100:
        raise ValueError("a percentage is between 0 and 100")
    return value


def _rate(text: str) -> float:
    value = float(str(text).strip())
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _positive(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise ValueError("must be at least 1")
    return value


def _hep(text: str) -> str:
    host, port = split_address(str(text).strip())
    if not host or not 0 < port < 65536:
        raise ValueError("expected HOST:PORT of a capture node, e.g. 127.0.0.1:9060")
    return str(text).strip()


def _file(text: str) -> str:
    path = os.path.abspath(os.path.expanduser(str(text)))
    if not os.path.isfile(path):
        raise ValueError(f"no such file: {text}")
    return path


@dataclass(frozen=True)
class Option:
    name: str  # ini key; the CLI flag is --<name with - for _>
    type: Callable[[str], Any]
    default: Any
    help: str
    metavar: str = ""
    optional: str | None = None  # the value of the bare flag (``--flag`` = ``--flag=optional``)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def is_switch(self) -> bool:
        return self.type is _bool

    def describe_default(self) -> str:
        if self.default is None:
            return "none"
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        return f"{self.default:g}" if isinstance(self.default, (int, float)) else str(self.default)


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
    Option("sipflow_registrar", str, None, "registrar/proxy HOST[:PORT] of the server under "
           "test, for instances without their own pbxHost (real mode)", "HOST[:PORT]"),
    Option("sipflow_transport", _transport, "udp", "transport to the registrar for instances "
           "without their own pbxTransport: udp, tcp or tls", "udp|tcp|tls"),
    Option("sipflow_register_timeout", float, 5000.0, "how long in ms a registration or "
           "un-registration may take before it fails with no response", "MS"),
    Option("sipflow_tls_ca", _file, None, "PEM file of CA certificates trusted besides the "
           "system's, to verify the server's TLS certificate", "FILE"),
    Option("sipflow_tls_cert", _file, None, "PEM client certificate for mutual TLS", "FILE"),
    Option("sipflow_tls_key", _file, None, "PEM private key of --sipflow-tls-cert", "FILE"),
    Option("sipflow_tls_insecure", _bool, False, "do not verify the server's TLS certificate "
           "(the report header says so)"),
    Option("sipflow_bind_address", _address, LOOPBACK, "local IP address for SIP and RTP",
           "ADDR"),
    Option("sipflow_trace", _trace, "failed", "show the full SIP trace of failed items, of all "
           "items, or of none", "failed|all|none"),
    Option("sipflow_ladder_lines", _count, 40, "SIP messages in a failure's ladder (the last "
           "ones; the count of left-out ones is shown)", "N"),
    Option("sipflow_pcap", str, None, "write one .pcap per scenario item into DIR", "DIR"),
    Option("sipflow_json", str, None, "write one JSON result document per scenario item into "
           "DIR (docs/results-json.md)", "DIR"),
    # --- coverage, load runs, HEP
    Option("sipflow_coverage", str, None, "scenario coverage: a table in the summary, "
           "DIR/coverage.json and DIR/coverage.html (bare flag: DIR = sipflow-coverage; write "
           "--sipflow-coverage=DIR)", "DIR", optional="sipflow-coverage"),
    Option("sipflow_coverage_fail_under", _percent, None, "fail the run when the scenario "
           "coverage total is under N percent", "N"),
    Option("sipflow_repeat", _count, 0, "run each scenario file as a load of N iterations and "
           "report KPIs; a file's \"slo\" is checked (0: run once)", "N"),
    Option("sipflow_rate", _rate, 0.0, "iterations started per second in a load run (0: each "
           "starts when one ends)", "R"),
    Option("sipflow_concurrency", _positive, 1, "iterations of a load run at once (each has "
           "its own agents)", "C"),
    Option("sipflow_hep", _hep, None, "send every SIP message as HEP3 over UDP to a Homer / "
           "heplify-server capture node", "HOST:PORT"),
    Option("sipflow_hep_capture_id", _count, 1, "capture id of the HEP packets", "ID"),
)
FULL_TRACE_HELP = "show internal tracebacks with sipflow failures (also on with --fulltrace)"


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("sipflow", "SIP scenario testing (pytest-sipflow)")
    for opt in OPTIONS:
        help_text = f"{opt.help} (default {opt.describe_default()})"
        if opt.is_switch:
            group.addoption(opt.flag, dest=opt.name, action="store_true", default=None,
                            help=help_text)
            parser.addini(opt.name, opt.help, type="bool", default=opt.default)
        elif opt.optional is not None:
            group.addoption(opt.flag, dest=opt.name, default=None, metavar=opt.metavar,
                            nargs="?", const=opt.optional, help=help_text)
            parser.addini(opt.name, opt.help, default=None)
        else:
            group.addoption(opt.flag, dest=opt.name, default=None, metavar=opt.metavar,
                            help=help_text)
            parser.addini(opt.name, opt.help,
                          default=None if opt.default is None else str(opt.default))
    group.addoption("--sipflow-full-trace", dest="sipflow_full_trace", action="store_true",
                    default=None, help=FULL_TRACE_HELP)
    parser.addini("sipflow_full_trace", FULL_TRACE_HELP, type="bool", default=False)


def _value(config: pytest.Config, opt: Option) -> Any:
    cli = config.getoption(opt.name)
    where, raw = (opt.flag, cli) if cli is not None else (f"ini option {opt.name}",
                                                          config.getini(opt.name))
    if raw is None or raw == "":
        return opt.default
    if opt.is_switch and isinstance(raw, bool):
        return raw
    try:
        return opt.type(raw)
    except ValueError as exc:
        detail = str(exc) if opt.type not in (int, float) else "expected a number"
        if "could not convert" in detail:
            detail = "expected a number"
        raise pytest.UsageError(f"{where} = {raw!r}: {detail}") from None


def settings_from_config(config: pytest.Config) -> Settings:
    values = {opt.name: _value(config, opt) for opt in OPTIONS}
    workerinput = getattr(config, "workerinput", None)
    worker = worker_index(workerinput["workerid"]) if workerinput else worker_index()
    plan = PortPlan(int(values["sipflow_port_base"]), int(values["sipflow_port_range"]),
                    int(values["sipflow_rtp_port_base"]), worker,
                    address=values["sipflow_bind_address"])
    try:
        plan.check()
    except ValueError as exc:
        raise pytest.UsageError(f"sipflow ports: {exc}") from None
    for name in ("sipflow_event_timeout", "sipflow_scenario_timeout", "sipflow_register_timeout"):
        if values[name] < 0:
            raise pytest.UsageError(f"{name} must not be negative")
    if bool(values["sipflow_tls_cert"]) != bool(values["sipflow_tls_key"]):
        raise pytest.UsageError("--sipflow-tls-cert and --sipflow-tls-key go together")
    full = config.getoption("sipflow_full_trace")
    full_trace = bool(full) if full is not None else bool(config.getini("sipflow_full_trace"))
    full_trace = full_trace or bool(config.getoption("fulltrace", False))
    tls = TlsSettings(ca_file=values["sipflow_tls_ca"], cert_file=values["sipflow_tls_cert"],
                      key_file=values["sipflow_tls_key"],
                      verify=not values["sipflow_tls_insecure"])
    engine = EngineSettings(event_timeout_ms=values["sipflow_event_timeout"],
                            scenario_timeout_ms=values["sipflow_scenario_timeout"],
                            registrar=values["sipflow_registrar"] or None,
                            transport=values["sipflow_transport"], tls=tls,
                            bind_address=values["sipflow_bind_address"],
                            register_timeout_s=values["sipflow_register_timeout"] / 1000.0)
    here = config.invocation_params.dir
    report = ReportSettings(
        trace=values["sipflow_trace"], ladder_lines=values["sipflow_ladder_lines"],
        pcap_dir=str(here / values["sipflow_pcap"]) if values["sipflow_pcap"] else None,
        json_dir=str(here / values["sipflow_json"]) if values["sipflow_json"] else None,
        coverage_dir=str(here / values["sipflow_coverage"]) if values["sipflow_coverage"] else None,
        coverage_fail_under=values["sipflow_coverage_fail_under"],
        hep=values["sipflow_hep"], hep_capture_id=values["sipflow_hep_capture_id"])
    if report.coverage_fail_under is not None and not report.coverage_dir:
        raise pytest.UsageError("--sipflow-coverage-fail-under needs --sipflow-coverage")
    load = LoadSettings(repeat=values["sipflow_repeat"], rate=values["sipflow_rate"],
                        concurrency=values["sipflow_concurrency"])
    return Settings(plan, engine, full_trace, report, load)


def report_header(settings: Settings) -> str:
    e = settings.engine
    line = (f"sipflow: {settings.ports.describe()}; event timeout {e.event_timeout_ms:g} ms, "
            f"scenario timeout {e.scenario_timeout_ms:g} ms"
            + ("; full trace" if settings.full_trace else ""))
    if e.registrar:
        line += f"\nsipflow: real mode: registrar {e.registrar} over {e.transport}"
    if not e.tls.verify:
        line += "\nsipflow: TLS certificates are NOT verified (--sipflow-tls-insecure)"
    elif e.tls.ca_file:
        line += f"\nsipflow: TLS CA file {e.tls.ca_file}"
    return line
