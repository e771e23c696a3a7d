"""The SIP trace: pjsua's message log entries become ``sip`` records.

The log writer hands every entry here (on the main thread: ``mainThreadOnly`` defers
other threads' lines to ``libHandleEvents``); ``sip.siplog`` finds the SIP messages in
them, this room adds what only the agent knows (local address, call handle, time). They
are sent as ``sip`` events, or kept until the op ``trace`` asks (``configure``'s ``trace``).
"""

from __future__ import annotations

import base64
import time
from typing import Any

from ...sip.message import decode_text, parse, readable, start_and_call_id
from ...sip.siplog import LoggedSip, SipLogReader
from ..loop import log
from .media import note_sdp
from .ops import op
from .state import AgentState


class SipTrace:
    """The log writer's sink: SIP messages to ``sip`` events, pjlib errors to stderr."""

    def __init__(self, st: AgentState) -> None:
        self.st = st
        self.reader = SipLogReader()

    def on_log(self, level: int, msg: str) -> None:
        """One pjsua log entry. ``msg`` may carry surrogate escapes (peer bytes)."""
        was_sip, logged = self.reader.feed(msg)
        if logged is not None:
            self.emit(logged)
        elif not was_sip and level <= 2:
            # Level 3 is mostly call dumps: they would push the useful lines (and a C
            # assert message) out of the parent's short stderr tail.
            log("pj: " + msg.rstrip())

    def emit(self, logged: LoggedSip) -> None:
        st = self.st
        if st.media_watch:
            text = decode_text(logged.raw)
            if start_and_call_id(text)[0].startswith("SIP/2.0 2"):  # an answer's SDP: its crypto
                message = parse(text)
                if message.body:
                    note_sdp(st, st.calls.handle_of(message.call_id), message.body)
        if st.keep_trace:  # built only if the parent asks: most runs never do
            st.kept.append((logged, time.time(), time.monotonic()))
        else:
            st.emit("sip", **record(st, logged, time.time()))


def record(st: AgentState, logged: LoggedSip, wall: float) -> dict[str, Any]:
    """The trace record of one SIP message (docs/agent-protocol.md, ``sip`` event)."""
    transport = logged.transport or ("UDP" if "UDP" in st.local_addr
                                     else next(iter(st.local_addr), "UDP"))
    remote, raw = logged.remote, logged.raw
    remote = readable(remote) if remote else remote
    text = decode_text(raw)  # UTF-8-encodable by construction: no ``clean`` needed
    start, cid = start_and_call_id(text)
    fields: dict[str, Any] = {
        "dir": logged.direction,
        "transport": transport,
        "local": st.local_addr.get(transport),
        "remote": remote,
        "peer": f"{transport} {remote}" if remote else None,
        "wall": wall,
        "summary": start,
        "text": text,
        "raw": base64.b64encode(raw).decode("ascii"),
        "call": st.calls.handle_of(cid),
        "sip_call_id": cid,
        "malformed": logged.malformed,
        "truncated": logged.truncated,
        "_clean": True,
    }
    if logged.error is not None:
        fields["error"] = readable(logged.error)
    if cid is not None:
        fields["_callid"] = cid
    return fields


@op("trace", needs_start=False)
def trace(st: AgentState, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
    """The kept messages from index ``since`` on, as ``sip`` events' fields."""
    since = max(0, int(args.get("since") or 0))
    records = []
    for logged, wall, t in st.kept[since:]:
        fields = record(st, logged, wall)  # ``call``: looked up now, the dialog may be newer
        fields.pop("_clean")
        fields.pop("_callid", None)
        records.append({"event": "sip", "t": round(t, 6), **fields})
    return {"records": records, "count": len(st.kept)}
