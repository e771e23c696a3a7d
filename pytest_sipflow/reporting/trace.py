"""The SIP trace of an item: one ``SipRecord`` per message an agent sent or received.

Records are plain JSON-safe data, so they cross xdist and land in the JSON results;
``wire_messages`` turns both sides' records into what was on the wire once.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections import defaultdict
from dataclasses import dataclass, replace
import time
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from ..sip.message import parse

MASK = "*****"
EPOCH_2001 = 978307200.0  # a record time below this is a monotonic clock, not epoch seconds


@dataclass(frozen=True)
class SipRecord:
    """One SIP message as one agent saw it (``direction`` is the dict's ``dir``).

    The record dict (JSON-safe, what crosses xdist and lands in the JSON results) is::

        {"dir": "tx"|"rx", "t": epoch seconds, "transport": "UDP"|"TCP"|"TLS",
         "local": "127.0.0.1:5060", "remote": "127.0.0.1:5062", "text": decoded message,
         "raw": base64 of the exact bytes, "summary": start line, "call": agent handle or None,
         "sip_call_id": str or None, "instance": scenario instance id}

    ``render_trace`` is the full text trace (every record, both sides); ``wire_messages``
    turns both sides' records into what was on the wire once (the ladder and the pcap).
    """

    direction: str  # "tx" | "rx"
    t: float  # wall clock, epoch seconds
    transport: str  # "UDP" | "TCP" | "TLS"
    local: str  # "ip:port" of the instance
    remote: str  # "ip:port" of the other side
    text: str  # decoded message, for people
    raw: str = ""  # base64 of the exact bytes ("" = encode ``text``)
    summary: str = ""  # start line
    call: str | None = None  # agent call handle
    sip_call_id: str | None = None
    instance: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SipRecord:
        """From the record dict; missing optional keys get their defaults."""
        text = str(data.get("text", ""))
        return cls(direction=str(data["dir"]), t=float(data["t"]),
                   transport=str(data.get("transport", "UDP")).upper(),
                   local=str(data["local"]), remote=str(data["remote"]), text=text,
                   raw=str(data.get("raw") or ""),
                   summary=str(data.get("summary") or text.split("\n", 1)[0].strip()),
                   call=data.get("call"), sip_call_id=data.get("sip_call_id"),
                   instance=str(data.get("instance", "")))

    @classmethod
    def from_event(cls, data: Mapping[str, Any], own_address: str = "",
                   clock_offset: float | None = None) -> SipRecord:
        """From an agent's ``sip`` event, also of older agents, which sent ``peer``
        (``"UDP 127.0.0.1:5062"``) instead of ``transport``/``remote``, no ``local`` (then
        ``own_address``, the instance's) and ``t`` as ``time.monotonic()`` (``wall`` is
        taken when present; a monotonic time is moved onto the wall clock by
        ``clock_offset``, default ``time.time() - time.monotonic()`` now: pass one offset for
        all records of an item so their order is kept)."""
        peer_transport, _, peer_address = str(data.get("peer") or "").partition(" ")
        text = str(data.get("text", ""))
        t = float(data["wall"] if data.get("wall") is not None else data["t"])
        if t < EPOCH_2001:  # monotonic: same clock in the agent (same machine) and here
            t += clock_offset if clock_offset is not None else time.time() - time.monotonic()
        return cls.from_dict({
            **data, "t": t,
            "transport": data.get("transport") or peer_transport or "UDP",
            "local": data.get("local") or own_address,
            "remote": data.get("remote") or peer_address,
            "sip_call_id": data.get("sip_call_id") or parse(text).call_id,
            "text": text})

    def as_dict(self) -> dict[str, Any]:
        return {"dir": self.direction, "t": self.t, "transport": self.transport,
                "local": self.local, "remote": self.remote, "text": self.text,
                "raw": self.raw, "summary": self.summary, "call": self.call,
                "sip_call_id": self.sip_call_id, "instance": self.instance}

    @property
    def data(self) -> bytes:
        """The exact bytes (``text`` encoded when ``raw`` is missing or not base64)."""
        if self.raw:
            try:
                return base64.b64decode(self.raw, validate=True)
            except (binascii.Error, ValueError):
                pass
        return self.text.encode("utf-8", "surrogateescape")

    @property
    def source(self) -> str:
        return self.local if self.direction == "tx" else self.remote

    @property
    def destination(self) -> str:
        return self.remote if self.direction == "tx" else self.local

    def masked(self, secrets: Iterable[str]) -> SipRecord:
        """The same record with every secret replaced in text, summary and raw bytes."""
        secrets = _secrets(secrets)
        if not secrets:
            return self
        data = self.data
        masked_data = data
        for secret in secrets:
            masked_data = masked_data.replace(secret.encode("utf-8"), MASK.encode())
        raw = base64.b64encode(masked_data).decode() if masked_data != data else self.raw
        return replace(self, text=mask_secrets(self.text, secrets),
                       summary=mask_secrets(self.summary, secrets), raw=raw)


def as_records(records: Iterable[SipRecord | Mapping[str, Any]]) -> list[SipRecord]:
    """Records or record dicts, as records in time order (stable for equal times)."""
    out = [r if isinstance(r, SipRecord) else SipRecord.from_dict(r) for r in records]
    return sorted(out, key=lambda r: r.t)


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of every non-empty secret by ``*****``; nothing else.

    Longer secrets go first, so a password that contains another one is masked whole.
    """
    for secret in _secrets(secrets):
        text = text.replace(secret, MASK)
    return text


def _secrets(secrets: Iterable[str]) -> list[str]:
    return sorted({s for s in secrets if s}, key=len, reverse=True)


def wire_messages(records: Iterable[SipRecord | Mapping[str, Any]]) -> list[SipRecord]:
    """Each message on the wire once, in time order.

    When one instance sent a message another instance received, both recorded it (A ``tx``,
    B ``rx``, same bytes, same source and destination): the send is kept and the receive
    dropped. Pairing is one-to-one in time order, so retransmissions (same bytes again)
    stay, as do messages from or to a foreign party (only one side recorded them).
    """
    records = as_records(records)
    sent: dict[tuple[bytes, str, str], int] = defaultdict(int)
    for r in records:
        if r.direction == "tx":
            sent[_wire_key(r)] += 1
    out = []
    for r in records:
        key = _wire_key(r)
        if r.direction != "tx" and sent[key] > 0:
            sent[key] -= 1
            continue
        out.append(r)
    return out


def _wire_key(record: SipRecord) -> tuple[bytes, str, str]:
    return record.data, record.source, record.destination


def format_time(t: float) -> str:
    """Epoch seconds as UTC with milliseconds, e.g. ``2024-05-01 12:00:00.123Z``."""
    stamp = datetime.fromtimestamp(t, tz=timezone.utc)
    return stamp.strftime("%Y-%m-%d %H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def render_trace(records: Iterable[SipRecord | Mapping[str, Any]],
                 secrets: Iterable[str] = ()) -> str:
    """The full trace: every record (both sides) in time order, header line then message.

    Header: ``#3 2024-05-01 12:00:00.123Z +12.3 ms bob rx UDP 127.0.0.1:5064 <- 127.0.0.1:5062``
    (the instance's own address first, the arrow giving the direction). The message text
    follows as received, with CRLF shown as LF and trailing blank lines dropped; secrets
    masked.
    """
    records = as_records(records)
    if not records:
        return "(no SIP messages)"
    start = records[0].t
    blocks = []
    for number, r in enumerate(records, 1):
        arrow = "->" if r.direction == "tx" else "<-"
        offset = (r.t - start) * 1000
        head = (f"#{number} {format_time(r.t)} +{offset:.1f} ms {r.instance or '?'} "
                f"{r.direction} {r.transport} {r.local} {arrow} {r.remote}")
        body = r.text.replace("\r\n", "\n").rstrip("\n")
        blocks.append(f"{head}\n{body}\n")
    return mask_secrets("\n".join(blocks), secrets)


class Hosts:
    """IP addresses for the hosts of the records (pcap, HEP); TEST-NET ones for names."""

    def __init__(self) -> None:
        self.names: dict[str, ipaddress.IPv4Address] = {}

    def ip(self, host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        try:
            return ipaddress.ip_address(host)
        except ValueError:
            if host not in self.names:
                self.names[host] = ipaddress.IPv4Address("192.0.2.1") + len(self.names)
            return self.names[host]
