"""What every room of the agent shares: the Endpoint, the account, the books, the channel.

``AgentState`` holds the data and the small helpers all rooms use (emit and reply,
call lookup and refusals, deferred replies, the media clock, the graveyard); the rooms
themselves are functions over it, registered in ``ops``.
"""

from __future__ import annotations

import socket
import time
import traceback
from typing import Any, Callable

import pjsua2 as pj

from ...sip import LOOPBACK
from ...sip.message import readable
from ..book import CallBook, DtmfJob, PendingOps, SocketBudget
from ..loop import Channel, hard_exit, log
from ..rules import OpError, state_name
from .objects import AgentAccount, AgentCall, AgentLogWriter, AgentPlayer
from .ops import CALLBACKS, DEFERRED, Deferred


def pj_error_text(exc: "pj.Error") -> str:
    """pjsua2's reason text and status (``info()`` also has the C expression and file)."""
    try:
        return f"{readable(exc.reason)} (status={exc.status})"
    except Exception:
        return str(exc)


def sip_headers(headers: Any) -> "pj.SipHeaderVector":
    if headers is not None and not isinstance(headers, dict):
        raise OpError("'headers' must be an object")
    vec = pj.SipHeaderVector()
    for name, value in (headers or {}).items():
        hdr = pj.SipHeader()
        hdr.hName = str(name)
        hdr.hValue = str(value)
        vec.append(hdr)
    return vec


def call_param(headers: Any = None) -> "pj.CallOpParam":
    """A CallOpParam whose message carries ``headers`` (the ops' ``headers`` argument)."""
    prm = pj.CallOpParam(True)
    for hdr in sip_headers(headers):
        prm.txOption.headers.append(hdr)
    return prm


class AgentState:
    def __init__(self, sock: socket.socket, name: str) -> None:
        self.name = name
        self.ch = Channel(sock, self.orphaned)
        self.ep: pj.Endpoint | None = None
        self.log_writer: AgentLogWriter | None = None
        #: the runtime's work after each poll (see ``pump``)
        self.housekeeping: Callable[[], None] = lambda: None
        self.wake_transport: int | None = None
        self.transport_id: int | None = None
        self.sip_port: int | None = None
        self.bind = LOOPBACK
        #: transport type name ("UDP", "TCP", "TLS") → local "ip:port" for sip events
        self.local_addr: dict[str, str] = {}
        self.rtp_port = 0
        self.rtp_port_count = 0
        self.acc: AgentAccount | None = None
        self.acc_uri: str | None = None
        self.acc_cfg: "pj.AccountConfig | None" = None
        self.registrar: str | None = None
        #: kind → pjsua transport id (UDP from start, TCP/TLS created on first use)
        self.transports: dict[str, int] = {}
        self.tls_settings: dict[str, Any] | None = None
        #: target URI → Buddy used to send MESSAGEs (dropped before the account)
        self.buddies: dict[str, "pj.Buddy"] = {}
        self.next_message = 1
        self.auto_ringing = True
        self.calls: CallBook[AgentCall] = CallBook()
        self.pending = PendingOps()
        self.budget = SocketBudget()
        self.dtmf_jobs: list[DtmfJob] = []
        self.players: dict[int, AgentPlayer] = {}
        self.next_play = 1
        #: calls' media statistics are watched (``configure`` with ``media_stats``)
        self.media_watch = False
        #: watched calls whose first received RTP packet is still awaited
        self.first_rx_pending: set[str] = set()
        #: ``media_stats`` requests served (tests prove an unused feature costs nothing)
        self.media_requests = 0
        #: test-only SDP fault: the m=audio port this agent advertises (None: its own)
        self.sdp_audio_port: int | None = None
        #: recording id → (call handle, WAV path, AudioMediaRecorder) (``recording``)
        self.recorders: dict[int, tuple[str, str, Any]] = {}
        self.next_record = 1
        #: (destroy-after time, object): pjsua-backed objects released on the main loop
        self.graveyard: list[tuple[float, Any]] = []
        self.default_codecs: dict[str, int] = {}
        self.last_gc = time.monotonic()
        #: something happened since the last gc.collect (an idle agent never collects:
        #: a collection costs a few ms, ≈ 0.1 % of a core every 10 s)
        self.dirty = False
        self.stopping = False
        self.clock_on = False
        #: since when no call or player exists (the clock stops CLOCK_IDLE_S later)
        self.idle_since: float | None = None
        #: ``configure`` with ``trace: "keep"``: SIP messages are kept here (not sent as
        #: ``sip`` events) until the parent asks for them (op ``trace``)
        self.keep_trace = False
        self.kept: list[Any] = []

    # ----------------------------------------------------------------- channel

    def emit(self, event: str, **fields: Any) -> None:
        self.dirty = True
        if self.keep_trace:  # which kept messages precede the event (header checks read them)
            fields["sip_n"] = len(self.kept)
        self.ch.emit(event, **fields)

    def reply(self, req_id: Any, ok: bool, result: dict[str, Any] | None = None,
              error: str | None = None) -> None:
        self.ch.reply(req_id, ok, result, error)

    def flush(self) -> None:
        self.ch.flush(self.calls.handle_of)

    def guard(self, where: str, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:
            log(f"{where} failed:\n{traceback.format_exc()}")
            self.emit("internal_error", where=where, message=f"{type(exc).__name__}: {exc}")

    def fire(self, name: str, *args: Any) -> None:
        """A pjsua2 callback: its registered handler, guarded."""
        self.guard(name, lambda: CALLBACKS[name](self, *args))

    def pump(self, ms: int) -> None:
        """Run the event loop from inside an op (bounded waits)."""
        assert self.ep is not None
        self.ep.libHandleEvents(ms)
        self.housekeeping()
        self.flush()

    def orphaned(self) -> None:
        """The parent closed the channel: never linger. Best-effort BYEs, then exit."""
        log("channel closed by parent: exiting")
        try:
            if self.ep is not None and self.calls.live:
                self.ep.hangupAllCalls()
                deadline = time.monotonic() + 0.3
                while self.calls.live and time.monotonic() < deadline:
                    self.ep.libHandleEvents(10)
        except Exception:
            pass
        hard_exit(0)

    # ----------------------------------------------------------------- refusals

    def require_account(self) -> AgentAccount:
        if self.acc is None:
            raise OpError("no account (send 'configure' first)")
        return self.acc

    def get_call(self, args: dict[str, Any], key: str = "call") -> AgentCall:
        handle = args.get(key)
        if not isinstance(handle, str):
            raise OpError(f"missing {key!r} (a call handle)")
        call = self.calls.get(handle)
        if call is None:
            if handle in self.calls.ended:
                raise OpError(f"call {handle} has ended")
            raise OpError(f"unknown call {handle!r}")
        if call.getId() < 0:
            raise OpError(f"call {handle} is not set up yet")
        return call

    def require_confirmed(self, call: AgentCall) -> None:
        st = call.getInfo().state
        if st != pj.PJSIP_INV_STATE_CONFIRMED:
            raise OpError(f"call {call.handle} is not active (state {state_name(st)})")

    def verify_uri(self, args: dict[str, Any], key: str = "target") -> str:
        value = args.get(key)
        if not isinstance(value, str) or not value:
            raise OpError(f"missing {key!r} (a sip: URI)")
        assert self.ep is not None
        if self.ep.utilVerifySipUri(value) != 0:
            raise OpError(f"bad {'target ' if key == 'target' else key + ' '}URI {value!r}")
        return value

    def status_text(self, status: int) -> str:
        assert self.ep is not None
        try:
            return readable(self.ep.utilStrError(status))
        except Exception:
            return f"status {status}"

    # ----------------------------------------------------------------- deferred replies

    def defer(self, send: Callable[[], None], req_id: Any, op: str, kind: str, key: str,
              timeout: float, what: str, **data: Any) -> Deferred:
        """Run ``send`` and reply when the SIP outcome of ``kind`` on ``key`` arrives
        (``what``, for the timeout's error), or after ``timeout`` seconds."""
        try:
            pending = self.pending.add(req_id, op, kind, key, timeout, what, **data)
        except ValueError as exc:
            raise OpError(str(exc)) from None
        try:
            send()
        except BaseException:
            self.pending.remove(pending)
            raise
        return DEFERRED

    def resolve(self, key: str, kind: str | None, ok: bool,
                result: dict[str, Any] | None = None, error: str | None = None) -> None:
        for pending in self.pending.take(key, kind):
            self.reply(pending.req_id, ok, result,
                       error=f"{pending.op}: {error}" if error else None)

    # ----------------------------------------------------------------- media objects

    def note_callid(self, call: AgentCall) -> str | None:
        try:
            cid = readable(call.getInfo().callIdString)
        except pj.Error:
            return None
        self.calls.note_callid(cid, call.handle)
        return cid or None

    def media_clock(self, on: bool) -> None:
        """Open the null sound device (bridge clock) for calls; close it when idle."""
        if on == self.clock_on or self.ep is None:
            return
        try:
            if on:
                self.ep.audDevManager().setNullDev()
            else:
                self.ep.audDevManager().setNoDev()
            self.clock_on = on
        except pj.Error as exc:
            log(f"media clock {'on' if on else 'off'}: {pj_error_text(exc)}")

    def bury(self, player: AgentPlayer, eof_seen: bool = False) -> None:
        """Destroy a player later. Its EOF is delivered on pjmedia's event thread; if that
        raced with the destructor the director would call into a dying Python object. A
        player whose EOF was seen, or that nothing has read for a while (its call is gone),
        can no longer fire."""
        delay = 0.0 if eof_seen else 0.3
        self.graveyard.append((time.monotonic() + delay, player))
