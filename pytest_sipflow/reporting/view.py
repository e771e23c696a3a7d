"""One item's run as the report writers take it: records, columns, call keys, secrets.

The bridge between an engine result (plus its graph) and the pure renderers of this
package, so the plugin calls one thing per output and every output gets the same columns,
the same callId labels and the same masked secrets. No pytest here either.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from ..sip.address import split_address
from .ladder import render_ladder
from .results_json import file_name, result_document, write_result_json
from .trace import SipRecord, mask_secrets, render_trace

if TYPE_CHECKING:
    from ..engine.result import ScenarioResult
    from ..format.graph import Graph


@dataclass(frozen=True)
class ItemView:
    result: "ScenarioResult"
    records: list[SipRecord]  # time order, as recorded (secrets not yet masked)
    instances: list[str] = field(default_factory=list)  # column order: the graph's
    call_keys: dict[tuple[str, str], str] = field(default_factory=dict)  # (inst, Call-ID) -> key
    parties: dict[str, str] = field(default_factory=dict)  # "ip:port" or "ip" -> column name
    secrets: list[str] = field(default_factory=list)
    skipped: int = 0  # events that were not readable as records

    @classmethod
    def of(cls, result: "ScenarioResult", graph: "Graph | None" = None,
           registrar: str | None = None) -> ItemView:
        """Read the result's ``sip`` events into records, tolerating older agents' shape."""
        own = {i: str(v.get("address", "")) for i, v in getattr(result, "instances", {}).items()}
        records, skipped = [], 0
        offset = time.time() - time.monotonic()  # one for all: older agents' monotonic times
        for raw in result.sip_messages:
            try:
                records.append(SipRecord.from_event(raw, own.get(str(raw.get("instance")), ""),
                                                    offset))
            except (KeyError, TypeError, ValueError):
                skipped += 1
        records.sort(key=lambda r: r.t)
        handles = getattr(result, "call_keys", {})
        keys = {(r.instance, r.sip_call_id): handles[r.instance][r.call] for r in records
                if r.sip_call_id and r.call and r.call in handles.get(r.instance, {})}
        instances = list(graph.instances) if graph is not None else list(own)
        return cls(result, records, instances, keys, _parties(registrar, graph),
                   secrets_of(graph), skipped)

    def ladder(self, last: int | None, width: int = 100) -> str:
        return render_ladder(self.records, call_keys=self.call_keys, parties=self.parties,
                             instances=self.instances, last=last, width=width,
                             secrets=self.secrets)

    def trace(self) -> str:
        return render_trace(self.records, self.secrets)

    def mask(self, text: str) -> str:
        return mask_secrets(text, self.secrets)

    def html(self, title: str, last: int | None = 200) -> str:
        from .html import render_html, render_recordings

        return render_html(self.records, title, call_keys=self.call_keys, parties=self.parties,
                           instances=self.instances, last=last, secrets=self.secrets) + \
            render_recordings(getattr(self.result, "recordings", ()))

    def write_pcap(self, directory: str, item: str, frames: Iterable[Any] = ()) -> str:
        """``<directory>/<item as a file name>.pcap``; returns the path. ``frames``: the
        call's RTP/RTCP captured from the wire (``capture.WireCapture``)."""
        from .pcap import write_pcap

        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, file_name(item)[:-len(".json")] + ".pcap")
        write_pcap(self.records, path, self.secrets, frames)
        return path

    def write_json(self, directory: str, item: str, outcome: str | None = None,
                   duration: float | None = None, extra: dict[str, Any] | None = None) -> str:
        """``<directory>/<item as a file name>.json`` (``results_json``); returns the path.
        ``extra``: more top-level keys (a load run's ``kpi``)."""
        doc = result_document(self.result, item, outcome=outcome, duration=duration,
                              secrets=self.secrets, records=self.records)
        doc.update(extra or {})
        return write_result_json(directory, doc)


def secrets_of(graph: "Graph | None") -> list[str]:
    """Every instance's password: what no report may show."""
    out = []
    for inst in (graph.instances.values() if graph is not None else ()):
        password: Any = getattr(inst.data, "password", None)
        value = password.get_secret_value() if hasattr(password, "get_secret_value") else password
        if value:
            out.append(str(value))
    return out


def _parties(registrar: str | None, graph: "Graph | None" = None) -> dict[str, str]:
    """The server's column is named ``registrar``: ``--sipflow-registrar`` and the instances'
    own ``pbxHost``/``pbxPort``, by ``ip:port`` (by ip alone when no port is given)."""
    servers = [registrar] if registrar else []
    for inst in (graph.instances.values() if graph is not None else ()):
        host, port = getattr(inst.data, "pbx_host", ""), getattr(inst.data, "pbx_port", "")
        if host:
            servers.append(f"{host}:{port}" if str(port) else str(host))
    parties: dict[str, str] = {}
    for server in servers:
        host, port = split_address(server)
        parties[server if port else host] = "registrar"
    return parties
