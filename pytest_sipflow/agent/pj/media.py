"""Media of a call: DTMF (RFC 2833 or SIP INFO, sent and received) and WAV players.

Digits go out one at a time, paced by ``DtmfJob`` (the runtime steps due jobs after
each poll); a player's EOF comes from pjmedia's thread as a posted fact.
"""

from __future__ import annotations

from typing import Any

import pjsua2 as pj

from ..book import DtmfJob
from ..rules import DTMF_INFO_TYPE, OpError, check_audio_file, dtmf_info_body, dtmf_request
from .objects import AgentCall, AgentPlayer
from .ops import DEFERRED, callback, op
from .state import AgentState, pj_error_text, sip_headers


@op("dtmf")
def dtmf(st: AgentState, req_id: Any, args: dict[str, Any]) -> Any:
    call = st.get_call(args)
    st.require_confirmed(call)
    req = dtmf_request(args)
    job = DtmfJob(req_id, call.handle, req.digits, req.method, req.interval_ms,
                  headers=req.headers)
    st.dtmf_jobs.append(job)
    step_dtmf(st, job)
    return DEFERRED


def step_dtmf(st: AgentState, job: DtmfJob) -> None:
    """Send the job's next digit; reply once the last one went out (or one failed)."""
    call = st.calls.get(job.handle)
    if call is None or call.gone:
        st.dtmf_jobs.remove(job)
        st.reply(job.req_id, False,
                 error=f"dtmf: call {job.handle} ended after {job.index} digit(s)")
        return
    digit = job.next_digit
    try:
        if job.headers:  # pjsua's INFO cannot carry headers: send the same INFO ourselves
            req = pj.CallSendRequestParam()
            req.method = "INFO"
            req.txOption.contentType = DTMF_INFO_TYPE
            req.txOption.msgBody = dtmf_info_body(digit, job.duration)
            for hdr in sip_headers(job.headers):
                req.txOption.headers.append(hdr)
            call.sendRequest(req)
        else:
            prm = pj.CallSendDtmfParam()
            prm.method = (pj.PJSUA_DTMF_METHOD_SIP_INFO if job.method == "info"
                          else pj.PJSUA_DTMF_METHOD_RFC2833)
            prm.digits = digit
            prm.duration = job.duration
            call.sendDtmf(prm)
    except pj.Error as exc:
        st.dtmf_jobs.remove(job)
        st.reply(job.req_id, False, error=f"dtmf: digit {job.index + 1} ({digit}): "
                                          f"{pj_error_text(exc)}")
        return
    if job.sent():
        st.dtmf_jobs.remove(job)
        st.reply(job.req_id, True, {"sent": job.digits})


def dtmf_due(st: AgentState) -> None:
    """After a poll: reply to finished jobs, send the digits whose time has come."""
    for job in list(st.dtmf_jobs):
        due = job.due()
        if due == "reply":
            st.dtmf_jobs.remove(job)
            st.reply(job.req_id, True, {"sent": job.digits})
        elif due == "send":
            step_dtmf(st, job)


def cancel_dtmf(st: AgentState) -> None:
    for job in st.dtmf_jobs:
        st.reply(job.req_id, False, error="dtmf: cancelled by reset")
    st.dtmf_jobs.clear()


@callback("onDtmfDigit")
def on_dtmf(st: AgentState, call: AgentCall, prm: "pj.OnDtmfDigitParam") -> None:
    method = "info" if prm.method == pj.PJSUA_DTMF_METHOD_SIP_INFO else "rfc2833"
    st.emit("dtmf", call=call.handle, digit=str(prm.digit).upper(), method=method)


@op("play")
def play(st: AgentState, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
    call = st.get_call(args)
    st.require_confirmed(call)
    path = check_audio_file(args.get("path"))
    try:
        media = call.getAudioMedia(-1)
    except pj.Error as exc:
        raise OpError(f"call {call.handle} has no active audio: {pj_error_text(exc)}")
    play_id = st.next_play
    st.next_play += 1
    player = AgentPlayer(st.ch.post, play_id, call.handle, path)
    try:
        player.createPlayer(path, pj.PJMEDIA_FILE_NO_LOOP)
    except pj.Error as exc:
        raise OpError(f"cannot play {path}: {pj_error_text(exc)}")
    player.startTransmit(media)
    st.players[play_id] = player
    return {"play": play_id}


def player_ended(st: AgentState, play_id: int) -> None:
    """A player's posted EOF: ``play_done``, and the player is destroyed."""
    player = st.players.pop(play_id, None)
    if player is not None:
        st.emit("play_done", call=player.handle, path=player.path)
        st.bury(player, eof_seen=True)


def stop_players(st: AgentState) -> None:
    for play_id in list(st.players):
        st.bury(st.players.pop(play_id))
