"""SIP messages out of pjsua's log lines: what the agent's trace is made of.

pjsua logs every message it sends or receives (``TX``/``RX`` … ``--end msg--``) and every
packet it could not parse (``Dropping`` … then ``Dropped packet:`` …, or ``Error
processing packet``). This reader turns those entries into records; no pjsua2 here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .message import raw_of, readable

_LOG_HEAD_RE = re.compile(r"^(RX|TX) (\d+) bytes .* (?:from|to) (\S+) (\S+):$")
_DROPPING_RE = re.compile(r"^Dropping (\d+) bytes packet from (\S+) (\S+):(\d+) ?(.*)$", re.S)
_ERROR_PKT_RE = re.compile(r"^Error processing packet from (\S+):(\d+): (.*?):\n(.*)"
                           r"\n-- end of packet\.\s*$", re.S)
_DROPPED = "Dropped packet:"
_END_PACKET = "-- end of packet."


@dataclass(frozen=True)
class LoggedSip:
    """One SIP message from the log; ``transport`` None: not logged (the agent's own)."""

    direction: str  # "tx" or "rx"
    transport: str | None
    remote: str | None  # "ip:port" of the peer
    raw: bytes
    malformed: bool = False
    truncated: bool = False
    error: str | None = None


class SipLogReader:
    """Feeds on log entries in order; remembers a ``Dropping`` line until its dump."""

    def __init__(self) -> None:
        self._dropping: tuple[str, str | None, str] | None = None

    def feed(self, msg: str) -> tuple[bool, LoggedSip | None]:
        """(whether ``msg`` was a SIP log entry, the message it completes if any)."""
        if (msg.startswith("TX ") or msg.startswith("RX ")) and "--end msg--" in msg:
            return True, message_entry(msg)
        if msg.startswith(_DROPPED) and msg.rstrip().endswith(_END_PACKET):
            body = msg[len(_DROPPED):].rstrip()[: -len(_END_PACKET)]
            transport, remote, error = self._dropping or ("UDP", None, "unparseable")
            self._dropping = None
            return True, LoggedSip("rx", transport, remote, raw_of(body.removesuffix("\n")),
                                   malformed=True, error=readable(error))
        m = _DROPPING_RE.match(msg)
        if m:
            self._dropping = (m.group(2), f"{m.group(3)}:{m.group(4)}",
                              m.group(5).strip().lstrip(": ").strip())
            return True, None
        m = _ERROR_PKT_RE.match(msg)
        if m:
            return True, LoggedSip("rx", None, f"{m.group(1)}:{m.group(2)}", raw_of(m.group(4)),
                                   malformed=True, error=readable(m.group(3)))
        return False, None


def message_entry(msg: str) -> LoggedSip:
    """A ``TX``/``RX`` entry: head line (size, transport, peer), message, ``--end msg--``.
    A message shorter than the size its head announces was cut by pjsua's log buffer."""
    first, _, rest = msg.partition("\n")
    text = rest.rsplit("--end msg--", 1)[0]
    if text.endswith("\n"):
        text = text[:-1]
    m = _LOG_HEAD_RE.match(first.strip())
    direction = "tx" if first.startswith("TX") else "rx"
    transport, remote, size = (m.group(3), m.group(4), int(m.group(2))) if m \
        else ("UDP", None, None)
    raw = raw_of(text)
    return LoggedSip(direction, transport, remote, raw,
                     truncated=size is not None and len(raw) < size)
