"""The agent process's runtime: the Endpoint, the one loop every pjsua2 call runs in.

``threadCnt = 0``, media on the SIP ioqueue and ``mainThreadOnly``: pjsua2 work, callbacks
included, happens on the main thread, which blocks in ``libHandleEvents`` until I/O, a
pjsip timer or our next due time; requests and posted facts wake it (see ``loop``). After
each poll it does the rooms' due work, runs the media clock and collects garbage.
"""

from __future__ import annotations

import gc
import os
import socket
import time
import traceback
from typing import Any

import pjsua2 as pj

from ..book import next_wake
from ..loop import hard_exit, log, set_name
from ..rules import OpError
from . import account, calls, media, messages, recording, srtp, transfer, transports
from .objects import AgentLogWriter
from .ops import DEFERRED, OPS, op
from .siplog import SipTrace
from .state import AgentState, pj_error_text

#: The rooms whose ops and callbacks ``ops`` holds once they are imported.
ROOMS = (account, calls, media, messages, recording, srtp, transfer, transports)
#: Longest block in libHandleEvents: idle, and while calls are up (pjsua2 defers log
#: lines of other threads to the next libHandleEvents; keep those timely in calls).
#: Idle, nothing is due: requests and media-thread events wake the loop themselves, so a
#: long block only saves the ~1 ms of bookkeeping each empty turn costs.
IDLE_WAIT_S = 5.0
BUSY_WAIT_S = 0.1
#: The null sound device clocks the bridge (RTP, RFC 2833) only while a call or player
#: exists: idle, its 20 ms clock thread alone cost ≈ 0.4 % of a core. It stops this long
#: after the last call or player ended, not at once:
#: stopping it joins its 20 ms clock thread, which would delay the events of the call's
#: end and every agent reset; starting and stopping it per call also costs.
CLOCK_IDLE_S = 2.0
GC_EVERY_S = 10.0


def init_endpoint(st: AgentState) -> None:
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.uaConfig.maxCalls = 4
    cfg.uaConfig.userAgent = "pytest-sipflow-agent"
    st.log_writer = AgentLogWriter(SipTrace(st).on_log)
    cfg.logConfig.writer = st.log_writer
    cfg.logConfig.level = 4          # message logs are level 4
    cfg.logConfig.consoleLevel = 4   # gates the writer callback too
    cfg.logConfig.msgLogging = True
    cfg.logConfig.decor = 0
    cfg.medConfig.hasIoqueue = False  # RTP on the SIP ioqueue → polled on main thread
    cfg.medConfig.threadCnt = 0
    cfg.medConfig.noVad = True
    cfg.medConfig.ecTailLen = 0
    # Once open, keep the null device clocking the bridge (RTP, RFC 2833 need it);
    # media_clock() opens it for calls and closes it when idle.
    cfg.medConfig.sndAutoCloseTime = -1
    ep.libInit(cfg)
    ep.audDevManager().setNoDev()
    ep.libStart()
    st.ep = ep
    for ci in ep.codecEnum2():
        st.default_codecs[ci.codecId] = ci.priority
    transports.wake_transport(st)
    st.housekeeping = lambda: housekeeping(st)


def run(st: AgentState) -> None:
    """Main loop: every pjsua2 call of the process happens here."""
    assert st.ep is not None
    ep = st.ep
    while not st.stopping:
        while not st.stopping:
            req = st.ch.next_request()
            if req is None:
                break
            handle_request(st, req)
            st.flush()
        if st.stopping:
            break
        ep.libHandleEvents(int(wait_time(st) * 1000))
        housekeeping(st)
        st.flush()


def wait_time(st: AgentState) -> float:
    """How long the loop may block: until our next due time, pjsip's own timers
    bound the wait inside libHandleEvents."""
    now = time.monotonic()
    due: list[float | None] = [st.pending.next_deadline(),
                               st.last_gc + GC_EVERY_S if st.dirty else None]
    due += [job.wake_at() for job in st.dtmf_jobs]
    due += [t for t, _ in st.graveyard]
    due += transfer.children_due(st)
    if st.clock_on and st.idle_since is not None:
        due.append(st.idle_since + CLOCK_IDLE_S)
    busy = bool(st.calls.live or st.players)
    return next_wake(now, *due, idle_max=BUSY_WAIT_S if busy else IDLE_WAIT_S)


def housekeeping(st: AgentState) -> None:
    """After each poll: posted facts, due DTMF digits and deadlines, media clock, GC."""
    for kind, data in st.ch.take_posted():
        if kind == "eof":
            media.player_ended(st, data)
    media.dtmf_due(st)
    if st.first_rx_pending:
        media.first_packets(st)
    for pending in st.pending.expired():
        if pending.req_id is None:
            continue  # reset's own wait (unregister_bounded) reports it
        error = pending.data.get("timeout_error") or f"no {pending.what} on {pending.key} in time"
        st.reply(pending.req_id, False, error=f"{pending.op}: {error}")
    now = time.monotonic()
    transfer.expire_children(st, now)
    if st.graveyard:
        # Destroyed here, on the main thread, outside any callback.
        st.graveyard = [(t, obj) for t, obj in st.graveyard if t > now]
    if st.calls.live or st.players:
        st.idle_since = None
    elif st.idle_since is None:
        st.idle_since = now
    elif st.clock_on and now - st.idle_since >= CLOCK_IDLE_S:
        st.media_clock(False)
    if st.dirty and now - st.last_gc > GC_EVERY_S:
        st.last_gc = now
        st.dirty = False
        gc.collect()


def handle_request(st: AgentState, req: dict[str, Any]) -> None:
    """One request through the op table; every refusal is a reply naming the op."""
    req_id = req.get("id")
    name = req.get("op")
    entry = OPS.get(name) if isinstance(name, str) else None
    if entry is None:
        st.reply(req_id, False, error=f"unknown op {name!r}")
        return
    args = {k: v for k, v in req.items() if k not in ("id", "op")}
    if name != "ping":  # the parent keeps the request log (see ``Agent.stderr_tail``)
        st.dirty = True
    try:
        if entry.needs_start and st.transport_id is None:
            raise OpError("agent not started (send 'start' first)")
        result = entry.fn(st, req_id, args)
    except OpError as exc:
        log(f"req {req_id} {name} refused: {exc}")
        st.reply(req_id, False, error=f"{name}: {exc}")
        return
    except pj.Error as exc:
        log(f"req {req_id} {name} refused: {pj_error_text(exc)}")
        st.reply(req_id, False, error=f"{name}: {pj_error_text(exc)}")
        return
    except KeyError as exc:
        st.reply(req_id, False, error=f"{name}: missing argument {exc}")
        return
    except (TypeError, ValueError) as exc:
        st.reply(req_id, False, error=f"{name}: bad argument: {exc}")
        return
    except Exception as exc:
        log(f"op {name} crashed:\n{traceback.format_exc()}")
        st.reply(req_id, False, error=f"{name}: {type(exc).__name__}: {exc}")
        return
    if result is DEFERRED:
        return
    st.reply(req_id, True, result or {})


# --------------------------------------------------------------------------- lifecycle ops


@op("ping", needs_start=False)
def ping(st: AgentState, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
    return {"pid": os.getpid(), "calls": sorted(st.calls.live), "sip_port": st.sip_port,
            "configured": st.acc is not None,
            "media_sockets": st.budget.in_use(len(st.calls)),
            "media_clock": st.clock_on,
            "media_watch": st.media_watch, "media_requests": st.media_requests}


@op("reset", needs_start=False)
def reset(st: AgentState, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Back to a fresh agent: pending replies cancelled, calls ended, account dropped —
    or, with ``keep_account`` and no registrar, kept as configured, so that the next user
    who would configure it the same way need not (``kept_account`` in the result)."""
    timeout = float(args.get("timeout", 3.0))
    media.cancel_dtmf(st)
    for pending in st.pending.take():
        st.reply(pending.req_id, False, error=f"{pending.op}: cancelled by reset")
    left = calls.hangup_all(st, timeout)
    media.stop_players(st)
    st.sdp_audio_port = None
    recording.stop_recorders(st)
    if left:
        raise OpError(f"{len(left)} call(s) did not end in {timeout}s: {', '.join(left)}; "
                      "discard this agent")
    st.kept.clear()
    st.calls.prune_callids()
    if args.get("keep_account") and st.acc is not None and not st.registrar:
        gc.collect()
        return {"kept_account": True}
    st.media_watch = st.keep_trace = False  # the next user streams unless it asks otherwise
    result = account.unregister_bounded(
        st, min(timeout, float(args.get("unregister_timeout", 2.0))))
    account.drop_account(st)
    if st.ep is not None and st.transport_id is not None:
        account.apply_codecs(st, None)
    gc.collect()
    return result


@op("debug_abort", needs_start=False)
def debug_abort(st: AgentState, req_id: Any, args: dict[str, Any]) -> None:
    """Test hook: die like a pjlib C assert does (SIGABRT), to exercise crash reports."""
    st.flush()
    log(f"debug_abort requested: {args.get('message', 'aborting')}")
    os.abort()


@op("shutdown", needs_start=False)
def shutdown(st: AgentState, req_id: Any, args: dict[str, Any]) -> Any:
    st.reply(req_id, True, {})
    st.flush()
    st.stopping = True
    try:
        if st.ep is not None:
            calls.hangup_all(st, 1.0)
            st.flush()
            st.ep.libDestroy(pj.PJSUA_DESTROY_NO_RX_MSG)
    except Exception:
        log("shutdown failed:\n" + traceback.format_exc())
        hard_exit(1)
    hard_exit(0)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pytest_sipflow.agent")
    parser.add_argument("--fd", type=int, required=True, help="inherited socket fd (socketpair end)")
    parser.add_argument("--name", default="agent")
    ns = parser.parse_args(argv)
    # Automatic GC could run a SWIG destructor on the reader thread (unregistered with
    # pjlib → assert → abort). The main loop collects explicitly instead.
    gc.disable()
    serve(socket.socket(fileno=ns.fd), ns.name)
    return 0


def serve(sock: socket.socket, name: str) -> None:
    """One agent on its channel, until shutdown or orphaned; never returns.

    Both a spawned agent (``main``) and a child of the fork server run this.
    """
    set_name(name)
    st = AgentState(sock, name)
    try:
        init_endpoint(st)
    except Exception:
        log("endpoint init failed:\n" + traceback.format_exc())
        hard_exit(2)
    # What exists now (modules, the Endpoint) lives as long as the process: keep it out of
    # every later collection, so the explicit collects after calls cost microseconds.
    gc.freeze()
    st.ch.start_reader()
    st.emit("ready", pid=os.getpid(), pjsua2=st.ep.libVersion().full if st.ep else None)
    st.flush()
    try:
        run(st)
    except Exception:
        log("main loop crashed:\n" + traceback.format_exc())
        hard_exit(1)
    hard_exit(0)
