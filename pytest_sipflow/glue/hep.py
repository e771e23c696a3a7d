"""``--sipflow-hep host:port``: every item's SIP messages (and media statistics) as HEP3.

Sent by the process that ran the item, after each run (each iteration of a load run),
fire-and-forget over UDP: a capture node that is down never fails a test; the summary
says how many packets went out and the last error.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest

from .keys import session_key

if TYPE_CHECKING:
    from ..engine.result import ScenarioResult
    from ..format.graph import Graph
    from ..reporting.hep import HepSender

PLUGIN_NAME = "sipflow-hep"


def send_run(sender: "HepSender", result: "ScenarioResult", graph: "Graph | None",
             registrar: str | None = None) -> int:
    """One run's SIP messages (type 1, passwords masked) and, when the run has media
    statistics (``result.media``), one RTCP report per call (type 5); returns the count."""
    from ..reporting.hep import media_packets
    from ..reporting.view import ItemView

    view = ItemView.of(result, graph, registrar)
    sent = sender.send_records(view.records, view.secrets)
    media = per_call_media(result)
    if media:
        end = max((r.t for r in view.records), default=time.time())
        sent += sum(sender.send(p) for p in media_packets(media, end, sender.capture_id,
                                                           sender.auth_key))
    return sent


def per_call_media(result: "ScenarioResult") -> dict[str, dict[str, Any]]:
    """``"instance/callId"`` -> the call's statistics (with MOS) and its SIP Call-ID, from
    ``result.media`` (instance -> callId -> agent statistics) and the run's SIP records."""
    from ..media.stats import MediaStats

    out: dict[str, dict[str, Any]] = {}
    for inst, calls in result.media.items():
        handles = {key: handle for handle, key in result.call_keys.get(inst, {}).items()}
        for key, raw in calls.items():
            if raw is None:
                continue
            handle = handles.get(key, key)
            call_id = next((m.get("sip_call_id") for m in result.sip_messages
                            if m.get("instance") == inst and m.get("call") == handle
                            and m.get("sip_call_id")), None)
            out[f"{inst}/{key}"] = {**MediaStats.from_dict(raw).to_dict(),
                                    "sip_call_id": call_id,
                                    "local_rtp": result.instances.get(inst, {}).get("address")}
    return out


class HepExport:
    def __init__(self, target: str, capture_id: int) -> None:
        from ..reporting.hep import HepSender

        self.sender = HepSender(target, capture_id)

    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> None:
        from .collect import SipflowItem

        if call.when != "call" or not isinstance(item, SipflowItem):
            return
        registrar = item.config.stash[session_key].settings.engine.registrar
        for result in item.runs:
            send_run(self.sender, result, item.graph, registrar)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        s = self.sender
        if s.sent or s.errors:  # this process's packets (an xdist worker's are not shown)
            terminalreporter.write_line(
                f"sipflow HEP: {s.sent} packets sent to {s.host}:{s.port}"
                + (f", {s.errors} not sent (last: {s.last_error})" if s.errors else ""))

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self.sender.close()


def register(config: pytest.Config) -> None:
    report = config.stash[session_key].settings.report
    if report.hep:
        config.pluginmanager.register(HepExport(report.hep, report.hep_capture_id), PLUGIN_NAME)
