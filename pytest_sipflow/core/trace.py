"""Which received SIP message completed an event: the source of every header check.

The agent emits a message's ``sip`` record *before* the event it causes, so the completing
message is the last received record of the right shape for that call before the event
(``Event.sip_mark``). Pure: records in, a parsed message out; no agent, no clock.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

from ..sip.checks import CheckFailure
from ..sip.message import SipMessage, parse

Record = Mapping[str, Any]
Shape = Callable[[SipMessage], bool]


def _request(*methods: str) -> Shape:
    return lambda m: m.method in methods


def _response(method: str, low: int, high: int = 699, codes: Iterable[int] = ()) -> Shape:
    wanted = set(codes)

    def shape(m: SipMessage) -> bool:
        if m.status is None or m.cseq[1] is None or m.cseq[1].upper() != method:
            return False
        return m.status in wanted if wanted else low <= m.status <= high
    return shape


def _either(*shapes: Shape) -> Shape:
    return lambda m: any(s(m) for s in shapes)


#: Event kind (the agent's event name, or ``final`` / ``register`` for the final response
#: of MakeCall / Register) -> the shape of the received message that completes it.
COMPLETES: dict[str, Shape] = {
    "incoming": _request("INVITE"),
    "ringing": _response("INVITE", 0, codes=(180, 183)),
    "confirmed": _either(_request("ACK"), _response("INVITE", 200, 299)),  # UAS / UAC
    "final": _response("INVITE", 200),
    "disconnected": _either(_request("BYE", "CANCEL"), _response("INVITE", 300)),
    "held": _request("INVITE", "UPDATE"),
    "retrieved": _request("INVITE", "UPDATE"),
    "transferred": _request("REFER"),
    "notify": _either(_request("NOTIFY"), _response("REFER", 300)),
    "message": _request("MESSAGE"),
    "dtmf": _request("INFO"),
    "register": _response("REGISTER", 200),
}

#: What each kind's message is, in words (for "no message" failures).
DESCRIBES = {
    "incoming": "INVITE", "ringing": "180/183 response", "confirmed": "2xx or ACK",
    "final": "final response to the INVITE", "disconnected": "BYE, CANCEL or error response",
    "held": "re-INVITE", "retrieved": "re-INVITE", "transferred": "REFER",
    "notify": "NOTIFY", "message": "MESSAGE", "dtmf": "INFO",
    "register": "final response to the REGISTER",
}


def completing_message(records: Iterable[Record], call: str | None, kind: str,
                       sip_call_id: str | None = None) -> SipMessage | None:
    """The last received message of shape ``kind`` for ``call`` (or, for out-of-dialog
    messages such as MESSAGE and REGISTER responses, for ``sip_call_id`` / any call) in
    ``records`` (one instance's trace up to the event), or None."""
    shape = COMPLETES[kind]
    for record in reversed(list(records)):
        if record.get("dir") != "rx" or record.get("malformed"):
            continue
        if sip_call_id is not None:
            if record.get("sip_call_id") != sip_call_id:
                continue
        elif call is not None and record.get("call") != call:
            continue
        message = parse(str(record.get("text") or ""))
        if shape(message):
            return message
    return None


def last_received(records: Iterable[Record], call: str) -> SipMessage | None:
    """The last SIP message received on ``call`` (any method or response)."""
    for record in reversed(list(records)):
        if record.get("dir") == "rx" and not record.get("malformed") and record.get("call") == call:
            return parse(str(record.get("text") or ""))
    return None


def failure_lines(failures: list[CheckFailure]) -> tuple[str, str]:
    """(expected, actual) lines of failed header checks, one ``; ``-joined item per check."""
    expected = "; ".join(f"header '{f.header}' {f.expected}" for f in failures)
    actual = "; ".join(f"header '{f.header}': {f.actual}" for f in failures)
    return expected, actual

