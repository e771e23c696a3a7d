"""Realistic SIP record lists (both sides' tx/rx records) for the reporting tests and docs."""

from __future__ import annotations

import base64
import zlib
from typing import Any

T0 = 1714564800.0  # 2024-05-01 12:00:00 UTC

ADDRESSES = {"alice": "127.0.0.1:5062", "bob": "127.0.0.1:5064", "kamailio": "127.0.0.1:5060"}
USERS = {"alice": "100", "bob": "200", "kamailio": "200"}


def message(start: str, call_id: str, cseq: str, sender: str, receiver: str,
            extra: tuple[str, ...] = ()) -> str:
    """A complete SIP message, CRLF line ends, as pjsip would write it (shortened)."""
    src = ADDRESSES[sender]
    request = not start.startswith("SIP/2.0")
    via_host = src if request else ADDRESSES[receiver]
    lines = [start,
             f"Via: SIP/2.0/UDP {via_host};rport;branch=z9hG4bKPj{zlib.crc32((call_id + cseq).encode()):08x}",
             "Max-Forwards: 70" if request else None,
             f'From: "Alice" <sip:100@{ADDRESSES["alice"]}>;tag=a1b2c3',
             f"To: <sip:200@{ADDRESSES['bob']}>" + ("" if request or start.endswith("Trying")
                                                      else ";tag=b4d5e6"),
             f"Call-ID: {call_id}",
             f"CSeq: {cseq}",
             *extra,
             "Content-Length: 0"]
    return "\r\n".join(line for line in lines if line is not None) + "\r\n\r\n"


def records(flow: list[tuple[str, str, str, str, float]], call_id: str,
            instances: tuple[str, ...] = ("alice", "bob"),
            keys: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Record dicts for (sender, receiver, start line, CSeq, ms) steps: a tx for a sending
    instance, an rx (0.3 ms later) for a receiving instance."""
    out = []
    for sender, receiver, start, cseq, ms in flow:
        text = message(start, call_id, cseq, sender, receiver)
        raw = base64.b64encode(text.encode()).decode()
        for who, direction, delay in ((sender, "tx", 0.0), (receiver, "rx", 0.3)):
            if who not in instances:
                continue
            other = receiver if direction == "tx" else sender
            out.append({"dir": direction, "t": T0 + (ms + delay) / 1000, "transport": "UDP",
                        "local": ADDRESSES[who], "remote": ADDRESSES[other], "text": text,
                        "raw": raw, "summary": start, "call": (keys or {}).get(who, "c1"),
                        "sip_call_id": call_id, "instance": who})
    return out


BUSY_CALL_ID = "4f1c9e0d2a7b4c1e8d3f@127.0.0.1"
BUSY = [
    ("alice", "bob", "INVITE sip:200@127.0.0.1:5064 SIP/2.0", "1 INVITE", 0.0),
    ("bob", "alice", "SIP/2.0 100 Trying", "1 INVITE", 1.2),
    ("bob", "alice", "SIP/2.0 180 Ringing", "1 INVITE", 2.0),
    ("bob", "alice", "SIP/2.0 486 Busy Here", "1 INVITE", 1012.6),
    ("alice", "bob", "ACK sip:200@127.0.0.1:5064 SIP/2.0", "1 ACK", 1013.4),
]

BASIC_CALL_ID = "9a8b7c6d5e4f@127.0.0.1"
BASIC = [
    ("alice", "bob", "INVITE sip:200@127.0.0.1:5064 SIP/2.0", "1 INVITE", 0.0),
    ("bob", "alice", "SIP/2.0 180 Ringing", "1 INVITE", 2.0),
    ("bob", "alice", "SIP/2.0 200 OK", "1 INVITE", 500.0),
    ("alice", "bob", "ACK sip:200@127.0.0.1:5064 SIP/2.0", "1 ACK", 501.0),
    ("alice", "bob", "BYE sip:200@127.0.0.1:5064 SIP/2.0", "2 BYE", 1501.0),
    ("bob", "alice", "SIP/2.0 200 OK", "2 BYE", 1502.0),
]


def busy_call() -> list[dict[str, Any]]:
    return records(BUSY, BUSY_CALL_ID)


def basic_call() -> list[dict[str, Any]]:
    return records(BASIC, BASIC_CALL_ID)
