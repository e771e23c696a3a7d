"""Media of a call: DTMF (RFC 2833 or SIP INFO, sent and received), WAV players, and
the RTP statistics of calls whose scenario asks for them (``media_stats``).

Digits go out one at a time, paced by ``DtmfJob`` (the runtime steps due jobs after
each poll); a player's EOF comes from pjmedia's thread as a posted fact.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pjsua2 as pj

from ...sip.message import readable, sdp_crypto_suite
from ..loop import log

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


# --------------------------------------------------------------------------- statistics
#
# Only for an account configured with ``media_stats``: then each call gets a MediaWatch
# when its audio starts; the loop notes its first received packet, the stream's last
# numbers are read when pjsua destroys it (before DISCONNECTED is reported), and the
# ``disconnected`` event carries them. Without the flag none of this runs.


@dataclass
class MediaWatch:
    since: float  # monotonic: audio became active
    first_rx_ms: float | None = None
    #: counters of streams already destroyed (a re-INVITE may recreate the stream)
    before: dict[str, Any] | None = None
    final: dict[str, Any] | None = None


def _audio_index(call: AgentCall) -> int | None:
    try:
        ci = call.getInfo()
    except pj.Error:
        return None
    for med in ci.media:
        if med.type == pj.PJMEDIA_TYPE_AUDIO and med.status != pj.PJSUA_CALL_MEDIA_NONE:
            return int(med.index)
    return None


def _ms(stat: "pj.MathStat", scale: float = 1000.0) -> tuple[float, float]:
    return ((stat.mean / scale, stat.max / scale) if stat.n > 0 else (0.0, 0.0))


def _direction(s: "pj.RtcpStreamStat", bursts: int | None, jb_ms: float | None
               ) -> dict[str, Any]:
    mean, peak = _ms(s.jitterUsec)
    return {"packets": int(s.pkt), "bytes": int(s.bytes), "loss": int(s.loss),
            "discard": int(s.discard), "dup": int(s.dup), "reorder": int(s.reorder),
            "jitter_mean_ms": round(mean, 3), "jitter_max_ms": round(peak, 3),
            "loss_bursts": bursts, "jitter_buffer_ms": jb_ms}


def read_stream(call: AgentCall, idx: int, watch: MediaWatch | None) -> dict[str, Any]:
    """One sample of a stream, in ``media.stats.MediaStats`` shape (pj.Error if none)."""
    info = call.getStreamInfo(idx)
    stat = call.getStreamStat(idx)
    rtcp = stat.rtcp
    rx = _direction(rtcp.rxStat, int(rtcp.rxStat.lossPeriodUsec.n),
                    float(stat.jbuf.avgDelayMsec) if stat.jbuf.avgDelayMsec else None)
    tx = _direction(rtcp.txStat, None, None)
    param = info.audCodecParam
    ptime = param.info.frameLen * max(1, param.setting.frmPerPkt) or 20
    srtp = bool(info.proto & pj.PJMEDIA_TP_PROFILE_SRTP)
    started = watch.since if watch is not None else call.born
    out = {
        "codec": readable(info.codecName), "payload_type": int(info.txPt),
        "clock_rate": int(info.codecClockRate),
        "duration_s": round(time.monotonic() - started, 3),
        "rx": rx, "tx": tx, "ptime_ms": float(ptime),
        "rtt_ms": round(rtcp.rttUsec.mean / 1000.0, 3) if rtcp.rttUsec.n > 0 else None,
        "remote_rtp": readable(info.remoteRtpAddress) or None,
        "first_packet_ms": watch.first_rx_ms if watch is not None else None,
        "srtp": srtp, "crypto_suite": call.crypto if srtp else None,
    }
    if watch is not None and watch.before is not None:
        out["rx"] = add_counts(watch.before["rx"], rx)
        out["tx"] = add_counts(watch.before["tx"], tx)
    return out


def add_counts(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two streams' counters of one direction as one (jitter mean weighted by packets)."""
    out = {k: a[k] + b[k] for k in ("packets", "bytes", "loss", "discard", "dup", "reorder")}
    n = a["packets"] + b["packets"]
    out["jitter_mean_ms"] = round((a["jitter_mean_ms"] * a["packets"]
                                   + b["jitter_mean_ms"] * b["packets"]) / n, 3) if n else 0.0
    out["jitter_max_ms"] = max(a["jitter_max_ms"], b["jitter_max_ms"])
    bursts = [x["loss_bursts"] for x in (a, b)]
    out["loss_bursts"] = None if None in bursts else sum(bursts)
    out["jitter_buffer_ms"] = b["jitter_buffer_ms"] if b["jitter_buffer_ms"] is not None \
        else a["jitter_buffer_ms"]
    return out


def sample(call: AgentCall) -> dict[str, Any] | None:
    """The call's media now: its live stream, else the last numbers of its destroyed one."""
    watch: MediaWatch | None = call.watch
    idx = _audio_index(call) if not call.gone else None
    if idx is not None:
        try:
            return read_stream(call, idx, watch)
        except pj.Error:
            pass
    return watch.final if watch is not None else None


@op("media_stats")
def media_stats(st: AgentState, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
    """The live statistics of a call's audio stream ({"stats": null} when it has none)."""
    st.media_requests += 1
    return {"stats": sample(st.get_call(args))}


@callback("onCallMediaState")
def on_media_state(st: AgentState, call: AgentCall, prm: Any) -> None:
    if not st.media_watch or call.gone or call.watch is not None:
        return
    if _audio_index(call) is not None:
        call.watch = MediaWatch(time.monotonic())
        st.first_rx_pending.add(call.handle)


@callback("onStreamDestroyed")
def on_stream_destroyed(st: AgentState, call: AgentCall, prm: Any) -> None:
    """The stream's last numbers, read while it still exists."""
    watch: MediaWatch | None = call.watch
    if watch is None:
        return
    try:
        final = read_stream(call, int(prm.streamIdx), watch)
    except pj.Error as exc:
        log(f"media stats of {call.handle}: {pj_error_text(exc)}")
        return
    watch.final = final
    watch.before = {"rx": final["rx"], "tx": final["tx"]}


def first_packets(st: AgentState) -> None:
    """After a poll: note the time of each watched call's first received RTP packet."""
    for handle in list(st.first_rx_pending):
        call = st.calls.get(handle)
        watch = call.watch if call is not None else None
        idx = _audio_index(call) if call is not None and not call.gone else None
        if watch is None or idx is None:
            st.first_rx_pending.discard(handle)
            continue
        try:
            got = call.getStreamStat(idx).rtcp.rxStat.pkt
        except pj.Error:
            continue
        if got > 0:
            watch.first_rx_ms = round((time.monotonic() - watch.since) * 1000.0, 1)
            st.first_rx_pending.discard(handle)


def final_fields(st: AgentState, call: AgentCall) -> dict[str, Any]:
    """What ``disconnected`` carries of a watched call: ``{"media": stats or None}``."""
    st.first_rx_pending.discard(call.handle)
    if not st.media_watch:
        return {}
    watch: MediaWatch | None = call.watch
    return {"media": watch.final if watch is not None else None}


def note_sdp(st: AgentState, handle: str | None, text: str) -> None:
    """The SDES suite of a call: the one ``a=crypto`` of an SDP answer (a 2xx's body,
    sent or received), which the trace sees before the call's media state changes."""
    call = st.calls.get(handle) if handle else None
    if call is None or "a=crypto:" not in text:
        return
    suite = sdp_crypto_suite(text)
    if suite:
        call.crypto = suite
