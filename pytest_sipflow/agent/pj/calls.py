"""Call legs: dial, answer/respond, hang up, hold/retrieve, and the call-state callbacks.

Calls live in the ``CallBook`` and are dropped inside their DISCONNECTED callback, so a
stale Call can never be collected after its pjsua id was recycled. A hold/retrieve's
reply waits for its re-INVITE's final response.
"""

from __future__ import annotations

import time
from typing import Any

import pjsua2 as pj

from ...sip.message import parse, readable, sdp_direction
from ..loop import log
from ..rules import (OpError, check_headers, check_status_code, hold_change,
                     reinvite_outcome, state_name)
from .media import final_fields
from .objects import AgentCall
from .ops import callback, op
from .state import AgentState, call_param, pj_error_text


def wait_socket_budget(st: AgentState, timeout: float = 2.0) -> None:
    """Poll until a new call's sockets fit in the ioqueue (see book.IOQUEUE_HANDLES)."""
    deadline = time.monotonic() + timeout
    while not st.budget.fits(len(st.calls)):
        if time.monotonic() > deadline:
            raise OpError("too many calls set up in the last 0.65s: "
                          "pjsip's socket table is full; retry later")
        st.pump(10)


@op("make_call")
def make_call(st: AgentState, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
    acc = st.require_account()
    target = st.verify_uri(args)
    headers = check_headers(args.get("headers") or {})
    wait_socket_budget(st)
    handle = st.calls.new_handle()
    call = AgentCall(st.fire, acc, handle)
    call.follow_redirects = bool(args.get("follow_redirects", True))
    prm = call_param(headers)
    st.calls.add(handle, call)
    st.media_clock(True)
    try:
        call.makeCall(target, prm)
    except pj.Error:
        if st.calls.discard(handle) is not None:
            # media may have been created and closed: count its sockets as closing
            st.budget.released()
        raise
    cid = None if call.gone else st.note_callid(call)
    if cid is None:  # ended inside makeCall: its Call-ID was noted by onCallState
        cid = st.calls.callid_of(handle)
    return {"call": handle, "sip_call_id": cid}


def answer(call: AgentCall, code: int, reason: Any = None, headers: Any = None) -> None:
    """A response to an unanswered incoming call: < 300 answers it, ≥ 300 rejects it."""
    ci = call.getInfo()
    if ci.role != pj.PJSIP_ROLE_UAS or ci.state not in (
        pj.PJSIP_INV_STATE_INCOMING, pj.PJSIP_INV_STATE_EARLY
    ):
        raise OpError(f"call {call.handle} is not an unanswered incoming call "
                      f"(state {state_name(ci.state)})")
    prm = call_param(headers)
    prm.statusCode = code
    if reason:
        prm.reason = str(reason)
    if code >= 300:
        call.hangup(prm)
    else:
        call.answer(prm)


@op("answer")
def answer_op(st: AgentState, req_id: Any, args: dict[str, Any]) -> None:
    call = st.get_call(args)
    answer(call, int(args.get("code") or 200), args.get("reason"), args.get("headers"))


@op("respond")
def respond(st: AgentState, req_id: Any, args: dict[str, Any]) -> None:
    code = check_status_code(int(args["code"]))
    answer(st.get_call(args), code, args.get("reason"), args.get("headers"))


@op("hangup")
def hangup(st: AgentState, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
    handle = args.get("call")
    if isinstance(handle, str) and handle in st.calls.ended and handle not in st.calls:
        return {"already_ended": True}
    call = st.get_call(args)
    prm = call_param(args.get("headers"))
    if args.get("code"):
        prm.statusCode = int(args["code"])
    if args.get("reason"):
        prm.reason = str(args["reason"])
    call.hangup(prm)
    return {"already_ended": False}


@op("hold")
def hold(st: AgentState, req_id: Any, args: dict[str, Any]) -> Any:
    call = st.get_call(args)
    st.require_confirmed(call)
    prm = call_param(args.get("headers"))
    return st.defer(lambda: call.setHold(prm), req_id, "hold", "reinvite", call.handle,
                    float(args.get("timeout", 10.0)), "final response to the re-INVITE")


@op("retrieve")
def retrieve(st: AgentState, req_id: Any, args: dict[str, Any]) -> Any:
    call = st.get_call(args)
    st.require_confirmed(call)
    prm = call_param(args.get("headers"))
    prm.opt.flag = pj.PJSUA_CALL_UNHOLD
    return st.defer(lambda: call.reinvite(prm), req_id, "retrieve", "reinvite", call.handle,
                    float(args.get("timeout", 10.0)), "final response to the re-INVITE")


def hangup_all(st: AgentState, timeout: float) -> list[str]:
    """Hang up every call and poll until they are gone (bounded). Returns leftovers."""
    assert st.ep is not None
    for handle, call in list(st.calls.live.items()):
        if call.getId() < 0:
            forget_call(st, call, 0, "dropped before set-up")
            continue
        try:
            call.hangup(pj.CallOpParam(True))
        except pj.Error as exc:
            log(f"hangup {handle}: {pj_error_text(exc)}")
    deadline = time.monotonic() + timeout
    forced = False
    while st.calls.live and time.monotonic() < deadline:
        st.pump(10)
        if not forced and time.monotonic() > deadline - timeout / 2:
            forced = True
            st.ep.hangupAllCalls()
    return sorted(st.calls.live)


def forget_call(st: AgentState, call: AgentCall, code: int, reason: str) -> None:
    """Drop the call from the registry. Called inside its DISCONNECTED callback, so
    the Python object (and its C++ Call) dies when the callback returns, before
    pjsua can recycle its id."""
    if call.gone:
        return
    call.gone = True
    st.calls.end(call.handle)
    st.budget.released()
    st.resolve(call.handle, None, False, error=f"call {call.handle} ended ({code} {reason})")
    for play_id, player in list(st.players.items()):
        if player.handle == call.handle:
            st.bury(st.players.pop(play_id))
    st.emit("disconnected", call=call.handle, code=int(code), reason=str(reason),
            cancelled=call.cancelled, **final_fields(st, call))


# --------------------------------------------------------------------------- callbacks


@callback("onIncomingCall")
def on_incoming(st: AgentState, prm: "pj.OnIncomingCallParam") -> None:
    assert st.acc is not None
    handle = st.calls.new_handle()
    call = AgentCall(st.fire, st.acc, handle, prm.callId)
    st.calls.add(handle, call)
    st.media_clock(True)
    ci = call.getInfo()
    cid = readable(ci.callIdString)
    st.calls.note_callid(cid, handle)
    try:
        headers = parse(prm.rdata.wholeMsg).headers.as_dict()
    except Exception:
        headers = {}
    if st.auto_ringing:
        try:
            p = pj.CallOpParam(True)
            p.statusCode = 180
            call.answer(p)
        except pj.Error as exc:
            log(f"auto 180 on {handle}: {pj_error_text(exc)}")
    st.emit("incoming", call=handle, **{"from": ci.remoteUri, "to": ci.localUri},
            headers=headers, sip_call_id=cid)


@callback("onCallState")
def on_call_state(st: AgentState, call: AgentCall, prm: "pj.OnCallStateParam") -> None:
    if call.gone:
        return
    ci = call.getInfo()
    st.calls.note_callid(readable(ci.callIdString), call.handle)
    if ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
        if not call.confirmed:
            call.confirmed = True
            st.emit("confirmed", call=call.handle, code=int(ci.lastStatusCode),
                    reason=str(ci.lastReason), **audio_codec(call, ci))
    elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
        forget_call(st, call, ci.lastStatusCode, ci.lastReason)


def audio_codec(call: AgentCall, ci: "pj.CallInfo") -> dict[str, Any]:
    """``codec`` (e.g. "PCMA") and ``codec_clock_rate`` of the call's active audio
    stream, from pjsua's stream info; {} when there is none (no SDP answer, no audio)."""
    for med in ci.media:
        if med.type != pj.PJMEDIA_TYPE_AUDIO or med.status != pj.PJSUA_CALL_MEDIA_ACTIVE:
            continue
        try:
            info = call.getStreamInfo(med.index)
        except pj.Error as exc:
            log(f"stream info of {call.handle}: {pj_error_text(exc)}")
            return {}
        return {"codec": readable(info.codecName), "codec_clock_rate": int(info.codecClockRate)}
    return {}


@callback("onCallTsxState")
def on_call_tsx(st: AgentState, call: AgentCall, prm: "pj.OnCallTsxStateParam") -> None:
    """Our INVITE's 180/183 (``ringing``), then our re-INVITEs' final responses."""
    if call.gone:
        return
    e = prm.e
    if e.type != pj.PJSIP_EVENT_TSX_STATE:
        return
    ts = e.body.tsxState
    tsx = ts.tsx
    if tsx.role == pj.PJSIP_ROLE_UAS and tsx.method == "CANCEL":
        call.cancelled = True   # the peer gave up (or a fork's other branch answered)
        return
    if tsx.role != pj.PJSIP_ROLE_UAC or tsx.method != "INVITE":
        return
    code = int(tsx.statusCode)
    if not call.confirmed:
        if ts.type == pj.PJSIP_EVENT_RX_MSG and code in (180, 183):
            st.emit("ringing", call=call.handle, code=code)
        return
    final = tsx.state in (pj.PJSIP_TSX_STATE_COMPLETED, pj.PJSIP_TSX_STATE_TERMINATED)
    out = reinvite_outcome(code, final, tsx.statusText)
    if out is not None:
        st.resolve(call.handle, "reinvite", out.ok, out.result, out.error)


@callback("onCallRxOffer")
def on_rx_offer(st: AgentState, call: AgentCall, prm: "pj.OnCallRxOfferParam") -> None:
    direction = sdp_direction(prm.offer.wholeSdp)
    change = hold_change(direction, call.remote_held)
    if change is not None:
        call.remote_held = change == "held"
        st.emit(change, call=call.handle, direction=direction)
