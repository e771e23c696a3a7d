"""The agent process: one pjsua2 Endpoint driven over a JSON-lines socket.

This is the only module of pytest-sipflow that imports pjsua2. Design rules (see
docs/agent-protocol.md and the architecture notes):

* Every pjsua2 call runs on the **main thread**: ``threadCnt = 0``, media on the SIP
  ioqueue, ``mainThreadOnly`` so work from pjlib's own threads (log lines, DTMF) is
  deferred to ``libHandleEvents``. The main thread loops: run queued requests, poll
  ``libHandleEvents(5 ms)``, run timers, flush the outbox.
* A reader thread only turns socket lines into queued requests; it never touches
  pjsua2. Automatic GC is disabled so a SWIG destructor can never run on it; the main
  thread collects explicitly.
* Callbacks only copy plain data into the outbox (events, in order); the outbox is
  flushed after each request and each poll, which lets ``sip`` events learn the handle
  of a call whose Call-ID only became known after the message was logged.
* Calls live in a registry (handle → Call) and are dropped inside their DISCONNECTED
  callback, so a stale Call can never be collected after its pjsua id was recycled.
"""

from __future__ import annotations

import collections
import gc
import os
import queue
import re
import socket
import sys
import threading
import time
import traceback
from typing import Any, Callable

import pjsua2 as pj

from .protocol import LineReader, LineWriter, ProtocolError

LOOPBACK = "127.0.0.1"
POLL_MS = 5
DTMF_DIGITS = set("0123456789*#ABCD")
DTMF_DEFAULT_DURATION_MS = 160
#: As the scenario format's sipInstance default (the library default would pick speex).
DEFAULT_CODECS = ("PCMU", "PCMA")
#: pjlib's ioqueue has 64 handles, shared here by the SIP transport and every call's
#: RTP+RTCP sockets, and a closed socket's handle is only reusable ~500 ms later. When
#: the free list is empty the next registration is a C assert (abort). make_call waits
#: for the budget instead.
IOQUEUE_HANDLES = 64
IOQUEUE_RESERVED = 4
SOCKETS_PER_CALL = 2
SOCKET_FREE_DELAY_S = 0.65
#: How long after the parent vanished the process may spend before a hard exit.
ORPHAN_GRACE_S = 2.0
_AGENT_NAME = "agent"

#: Compact SIP header forms → full names (RFC 3261 §7.3.3 and friends).
_COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "r": "Refer-To",
    "b": "Referred-By",
    "o": "Event",
    "u": "Allow-Events",
    "x": "Session-Expires",
}
_CALL_ID_RE = re.compile(r"^(?:call-id|i)[ \t]*:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


def log(msg: str) -> None:
    """Diagnostics go to stderr: the parent keeps the tail for crash reports."""
    try:
        sys.stderr.write(f"[{_AGENT_NAME} {time.monotonic():.3f}] {msg}\n")
        sys.stderr.flush()
    except Exception:
        pass


def hard_exit(code: int) -> None:
    """Leave without running Python finalizers: after (or instead of) ``libDestroy`` a
    SWIG destructor touching pjsua would abort the process."""
    try:
        sys.stderr.flush()
    except Exception:
        pass
    os._exit(code)


class OpError(Exception):
    """A refused request; its text is the reply's ``error``."""


class _Deferred:
    """Returned by an op whose reply is sent later (dtmf)."""


DEFERRED = _Deferred()


def parse_headers(msg: str) -> dict[str, str]:
    """Header name → value of a SIP message (compact forms expanded, repeats joined)."""
    head = msg.replace("\r\n", "\n").split("\n\n", 1)[0]
    lines = head.split("\n")[1:]
    out: dict[str, str] = {}
    last: str | None = None
    for line in lines:
        if not line:
            break
        if line[0] in " \t" and last is not None:
            out[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name = name.strip()
        name = _COMPACT.get(name.lower(), name) if len(name) == 1 else name
        value = value.strip()
        if name in out:
            out[name] += ", " + value
        else:
            out[name] = value
        last = name
    return out


def sdp_direction(sdp: str) -> str:
    """Direction of the first audio stream of an SDP (media-level beats session-level)."""
    session_dir = "sendrecv"
    media_dir: str | None = None
    in_audio = False
    seen_media = False
    hold_addr = False
    for raw in sdp.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if line.startswith("m="):
            if seen_media and in_audio:
                break
            seen_media = True
            in_audio = line.startswith("m=audio")
            continue
        if line.startswith("c=") and line.endswith(" 0.0.0.0") and (in_audio or not seen_media):
            hold_addr = True
        if line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"):
            d = line[2:]
            if not seen_media:
                session_dir = d
            elif in_audio:
                media_dir = d
    direction = media_dir or session_dir
    if hold_addr and direction == "sendrecv":
        direction = "sendonly"  # RFC 2543 style hold
    return direction


# --------------------------------------------------------------------------- pjsua2 subclasses


class AgentLogWriter(pj.LogWriter):
    """Turns pjsua's message log (level 4, "TX/RX ... --end msg--") into ``sip`` events."""

    def __init__(self, server: "AgentServer") -> None:
        super().__init__()
        self.server = server

    def write(self, entry: "pj.LogEntry") -> None:
        try:
            msg = entry.msg
            if (msg.startswith("TX ") or msg.startswith("RX ")) and "--end msg--" in msg:
                self.server.on_sip_log(msg)
            elif entry.level <= 2:
                # Level 3 is mostly call dumps: they would push the useful lines (and
                # a C assert message) out of the parent's short stderr tail.
                log("pj: " + msg.rstrip())
        except Exception:
            log("log writer failed:\n" + traceback.format_exc())


class AgentAccount(pj.Account):
    def __init__(self, server: "AgentServer") -> None:
        super().__init__()
        self.server = server

    def onIncomingCall(self, prm: "pj.OnIncomingCallParam") -> None:
        self.server.guard("onIncomingCall", self.server.on_incoming, prm)


class AgentCall(pj.Call):
    """A call leg. Holds plain bookkeeping only; pjsua2 work is done by the server."""

    def __init__(self, server: "AgentServer", acc: AgentAccount, handle: str,
                 call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(acc, call_id)
        self.server = server
        self.handle = handle
        self.remote_held = False
        self.confirmed = False
        self.gone = False
        #: set for calls created for a REFER / Replaces before pjsua gives them an id
        self.born = time.monotonic()
        self.child_of: str | None = None

    # Each callback delegates to the server through guard(): an exception is logged
    # and reported as an event instead of being printed and swallowed by SWIG.
    def onCallState(self, prm: "pj.OnCallStateParam") -> None:
        self.server.guard("onCallState", self.server.on_call_state, self)

    def onCallTsxState(self, prm: "pj.OnCallTsxStateParam") -> None:
        self.server.guard("onCallTsxState", self.server.on_call_tsx, self, prm)

    def onCallRxOffer(self, prm: "pj.OnCallRxOfferParam") -> None:
        self.server.guard("onCallRxOffer", self.server.on_rx_offer, self, prm)

    def onDtmfDigit(self, prm: "pj.OnDtmfDigitParam") -> None:
        self.server.guard("onDtmfDigit", self.server.on_dtmf, self, prm)

    def onCallTransferRequest(self, prm: "pj.OnCallTransferRequestParam") -> None:
        self.server.guard("onCallTransferRequest", self.server.on_transfer_request, self, prm)

    def onCallTransferStatus(self, prm: "pj.OnCallTransferStatusParam") -> None:
        self.server.guard("onCallTransferStatus", self.server.on_transfer_status, self, prm)

    def onCallReplaceRequest(self, prm: "pj.OnCallReplaceRequestParam") -> None:
        self.server.guard("onCallReplaceRequest", self.server.on_replace_request, self, prm)

    def onCallReplaced(self, prm: "pj.OnCallReplacedParam") -> None:
        self.server.guard("onCallReplaced", self.server.on_replaced, self, prm)


class AgentPlayer(pj.AudioMediaPlayer):
    """WAV player; EOF arrives on pjmedia's event thread, so it is only posted."""

    def __init__(self, server: "AgentServer", play_id: int, handle: str, path: str) -> None:
        super().__init__()
        self.server = server
        self.play_id = play_id
        self.handle = handle
        self.path = path

    def onEof2(self) -> None:
        # Not the main thread: no pjsua2 call here, just hand the fact over.
        self.server.posted.put(("eof", self.play_id))


class PendingOp:
    """A request whose reply waits for a SIP outcome (re-INVITE final, REFER response)."""

    def __init__(self, req_id: Any, op: str, kind: str, timeout: float) -> None:
        self.req_id = req_id
        self.op = op
        self.kind = kind  # "reinvite" | "refer"
        self.deadline = time.monotonic() + timeout


class DtmfJob:
    """Digits sent one at a time from the main loop, ``interval_ms`` apart."""

    def __init__(self, req_id: Any, handle: str, digits: str, method: str, interval_ms: int) -> None:
        self.req_id = req_id
        self.handle = handle
        self.digits = digits
        self.method = method
        self.interval = interval_ms / 1000.0
        self.index = 0
        self.next_at = time.monotonic()
        self.reply_at: float | None = None
        self.busy_until = 0.0
        if interval_ms <= 0:
            self.duration = DTMF_DEFAULT_DURATION_MS
        else:
            self.duration = max(40, min(DTMF_DEFAULT_DURATION_MS, interval_ms * 2 // 3))


# --------------------------------------------------------------------------- the server


class AgentServer:
    def __init__(self, sock: socket.socket, name: str) -> None:
        self.name = name
        self.sock = sock
        self.out = LineWriter(sock)
        self.requests: "queue.SimpleQueue[dict[str, Any] | None]" = queue.SimpleQueue()
        self.posted: "queue.SimpleQueue[tuple[str, Any]]" = queue.SimpleQueue()
        self.outbox: list[dict[str, Any]] = []
        self.ep: pj.Endpoint | None = None
        self.log_writer: AgentLogWriter | None = None
        self.transport_id: int | None = None
        self.sip_port: int | None = None
        self.rtp_port = 0
        self.rtp_port_count = 0
        self.acc: AgentAccount | None = None
        self.acc_uri: str | None = None
        self.auto_ringing = True
        self.calls: dict[str, AgentCall] = {}
        self.ended: set[str] = set()
        self.next_handle = 1
        self.callids: dict[str, str] = {}
        self.dtmf_jobs: list[DtmfJob] = []
        self.players: dict[int, AgentPlayer] = {}
        self.next_play = 1
        #: (destroy-after time, object): pjsua-backed objects released on the main loop
        self.graveyard: list[tuple[float, Any]] = []
        self.default_codecs: dict[str, int] = {}
        self.last_gc = time.monotonic()
        self.stopping = False
        #: when the ioqueue handles of ended calls become reusable
        self.socket_releases: collections.deque[float] = collections.deque()
        #: call handle → requests waiting for that call's re-INVITE / REFER outcome
        self.pending_ops: dict[str, list[PendingOp]] = {}
        #: see wake(); a plain UDP socket, never touched by pjsua2
        self.waker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    # ----------------------------------------------------------------- plumbing

    def emit(self, event: str, **fields: Any) -> None:
        msg: dict[str, Any] = {"event": event, "t": round(time.monotonic(), 6)}
        msg.update(fields)
        self.outbox.append(msg)

    def reply(self, req_id: Any, ok: bool, result: dict[str, Any] | None = None,
              error: str | None = None) -> None:
        msg: dict[str, Any] = {"id": req_id, "ok": ok}
        if ok:
            if result:
                msg.update({k: v for k, v in result.items() if k not in ("id", "ok")})
        else:
            msg["error"] = error or "failed"
        self.outbox.append(msg)

    def flush(self) -> None:
        if not self.outbox:
            return
        box, self.outbox = self.outbox, []
        for msg in box:
            cid = msg.pop("_callid", None)
            if cid is not None and msg.get("call") is None:
                # The Call-ID may only have become known after the message was logged
                # (an INVITE is logged inside makeCall, before it returns).
                msg["call"] = self.callids.get(cid)
            try:
                self.out.send(msg)
            except OSError:
                # Parent gone: nothing to report to any more.
                self.orphaned()

    def guard(self, where: str, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:
            log(f"{where} failed:\n{traceback.format_exc()}")
            self.emit("internal_error", where=where, message=f"{type(exc).__name__}: {exc}")

    def new_handle(self) -> str:
        h = f"c{self.next_handle}"
        self.next_handle += 1
        return h

    def note_callid(self, call: AgentCall) -> str | None:
        try:
            cid = call.getInfo().callIdString
        except pj.Error:
            return None
        if cid:
            self.callids[cid] = call.handle
        return cid or None

    # ----------------------------------------------------------------- lifecycle

    def init_endpoint(self) -> None:
        ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = 4
        cfg.uaConfig.userAgent = "pytest-sipflow-agent"
        self.log_writer = AgentLogWriter(self)
        cfg.logConfig.writer = self.log_writer
        cfg.logConfig.level = 4          # message logs are level 4
        cfg.logConfig.consoleLevel = 4   # gates the writer callback too
        cfg.logConfig.msgLogging = True
        cfg.logConfig.decor = 0
        cfg.medConfig.hasIoqueue = False  # RTP on the SIP ioqueue → polled on main thread
        cfg.medConfig.threadCnt = 0
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        cfg.medConfig.sndAutoCloseTime = -1  # keep the null device clocking the bridge (RTP, RFC 2833)
        ep.libInit(cfg)
        ep.audDevManager().setNullDev()
        ep.libStart()
        self.ep = ep
        for ci in ep.codecEnum2():
            self.default_codecs[ci.codecId] = ci.priority

    def run(self) -> None:
        """Main loop: every pjsua2 call of the process happens here."""
        assert self.ep is not None
        ep = self.ep
        while not self.stopping:
            while True:
                try:
                    req = self.requests.get_nowait()
                except queue.Empty:
                    break
                if req is None:
                    self.orphaned()
                self.handle_request(req)
                self.flush()
                if self.stopping:
                    break
            if self.stopping:
                break
            ep.libHandleEvents(POLL_MS)
            self.after_poll()
            self.flush()

    def orphaned(self) -> None:
        """The parent closed the channel: never linger. Best-effort BYEs, then exit."""
        log("channel closed by parent: exiting")
        try:
            if self.ep is not None and self.calls:
                self.ep.hangupAllCalls()
                deadline = time.monotonic() + 0.3
                while self.calls and time.monotonic() < deadline:
                    self.ep.libHandleEvents(10)
        except Exception:
            pass
        hard_exit(0)

    def wake(self) -> None:
        """Cut the main loop's poll short so a request runs at once, not after POLL_MS.

        A datagram shorter than pjsip's minimum SIP packet size is read and dropped by
        the UDP transport without a log line, but it ends ``libHandleEvents``' wait.
        """
        port = self.sip_port
        if port is not None:
            try:
                self.waker.sendto(b"\0", (LOOPBACK, port))
            except OSError:
                pass

    def reader_loop(self) -> None:
        """Reader thread: socket lines → request queue. Never touches pjsua2."""
        reader = LineReader(self.sock)
        try:
            while True:
                msg = reader.read()
                if msg is None:
                    break
                self.requests.put(msg)
                self.wake()
        except (OSError, ProtocolError) as exc:
            log(f"channel read failed: {exc}")
        self.requests.put(None)
        # If the main thread is stuck inside pjsua, still do not outlive the parent.
        time.sleep(ORPHAN_GRACE_S)
        log("main loop did not exit after channel close: hard exit")
        hard_exit(3)

    # ----------------------------------------------------------------- requests

    def handle_request(self, req: dict[str, Any]) -> None:
        req_id = req.get("id")
        op = req.get("op")
        fn = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
        if fn is None:
            self.reply(req_id, False, error=f"unknown op {op!r}")
            return
        args = {k: v for k, v in req.items() if k not in ("id", "op")}
        if op != "ping":
            log(f"req {req_id} {op} {_brief(args)}")
        try:
            if op not in ("start", "shutdown", "ping", "reset", "debug_abort") and self.transport_id is None:
                raise OpError("agent not started (send 'start' first)")
            result = fn(req_id, args)
        except OpError as exc:
            log(f"req {req_id} {op} refused: {exc}")
            self.reply(req_id, False, error=f"{op}: {exc}")
            return
        except pj.Error as exc:
            log(f"req {req_id} {op} refused: {pj_error_text(exc)}")
            self.reply(req_id, False, error=f"{op}: {pj_error_text(exc)}")
            return
        except KeyError as exc:
            self.reply(req_id, False, error=f"{op}: missing argument {exc}")
            return
        except (TypeError, ValueError) as exc:
            self.reply(req_id, False, error=f"{op}: bad argument: {exc}")
            return
        except Exception as exc:
            log(f"op {op} crashed:\n{traceback.format_exc()}")
            self.reply(req_id, False, error=f"{op}: {type(exc).__name__}: {exc}")
            return
        if result is DEFERRED:
            return
        self.reply(req_id, True, result or {})

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
            if handle in self.ended:
                raise OpError(f"call {handle} has ended")
            raise OpError(f"unknown call {handle!r}")
        if call.getId() < 0:
            raise OpError(f"call {handle} is not set up yet")
        return call

    def call_state(self, call: AgentCall) -> int:
        return call.getInfo().state

    def require_confirmed(self, call: AgentCall) -> None:
        st = self.call_state(call)
        if st != pj.PJSIP_INV_STATE_CONFIRMED:
            raise OpError(f"call {call.handle} is not active (state {state_name(st)})")

    def op_ping(self, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
        return {"pid": os.getpid(), "calls": sorted(self.calls), "sip_port": self.sip_port,
                "configured": self.acc is not None, "media_sockets": self.sockets_in_use()}

    def op_start(self, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
        if self.transport_id is not None:
            raise OpError(f"already started on port {self.sip_port}")
        first = int(args["sip_port"])
        last = int(args.get("sip_port_last", first + 20))
        self.rtp_port = int(args.get("rtp_port", 4000))
        self.rtp_port_count = int(args.get("rtp_port_count", 100))
        if not (0 < first <= last < 65536):
            raise OpError(f"bad SIP port range {first}-{last}")
        assert self.ep is not None
        errors: list[str] = []
        for port in range(first, last + 1, 2):
            tcfg = pj.TransportConfig()
            tcfg.port = port
            tcfg.boundAddress = LOOPBACK
            tcfg.publicAddress = LOOPBACK
            try:
                self.transport_id = self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
            except pj.Error as exc:
                errors.append(f"{port}: {exc.reason}")
                continue
            self.sip_port = port
            return {"sip_port": port}
        raise OpError(f"no free UDP port on {LOOPBACK} in {first}-{last} (step 2); "
                      f"last error {errors[-1] if errors else '-'}")

    def op_configure(self, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
        assert self.ep is not None and self.transport_id is not None
        if self.acc is not None:
            if self.calls:
                raise OpError("already configured and calls are up (send 'reset' first)")
            self.drop_account()
        dn = str(args.get("dn") or "")
        display = str(args.get("display") or "")
        codecs = args.get("codecs") or list(DEFAULT_CODECS)
        self.auto_ringing = bool(args.get("auto_ringing", True))
        self.apply_codecs(codecs)
        user = f"{dn}@" if dn else ""
        uri = f"sip:{user}{LOOPBACK}:{self.sip_port}"
        if display:
            quoted = display.replace("\\", "\\\\").replace('"', '\\"')
            id_uri = f'"{quoted}" <{uri}>'
        else:
            id_uri = f"<{uri}>"
        acfg = pj.AccountConfig()
        acfg.idUri = id_uri
        acfg.sipConfig.transportId = self.transport_id
        acfg.regConfig.registerOnAdd = False
        mtc = acfg.mediaConfig.transportConfig
        mtc.port = self.rtp_port
        mtc.portRange = self.rtp_port_count
        mtc.boundAddress = LOOPBACK
        mtc.publicAddress = LOOPBACK
        # No automatic re-INVITE/UPDATE after answer: the trace stays what the scenario did,
        # and a pending hold/retrieve only ever sees its own re-INVITE.
        acfg.mediaConfig.lockCodecEnabled = False
        acc = AgentAccount(self)
        acc.create(acfg, True)
        self.acc = acc
        self.acc_uri = id_uri
        return {"uri": uri}

    def apply_codecs(self, codecs: Any) -> None:
        assert self.ep is not None
        if codecs is None:
            for cid, prio in self.default_codecs.items():
                self.ep.codecSetPriority(cid, prio)
            return
        if isinstance(codecs, str) or not isinstance(codecs, list) or not codecs:
            raise OpError("codecs must be a non-empty list of names")
        wanted: dict[str, int] = {}
        for i, name in enumerate(codecs):
            key = str(name).lower()
            matches = [cid for cid in self.default_codecs
                       if cid.lower() == key or cid.split("/")[0].lower() == key]
            if not matches:
                known = sorted({cid.split("/")[0] for cid in self.default_codecs})
                raise OpError(f"unknown codec {name!r} (available: {', '.join(known)})")
            for cid in matches:
                wanted.setdefault(cid, max(1, 255 - i))
        for cid in self.default_codecs:
            self.ep.codecSetPriority(cid, wanted.get(cid, 0))

    def sockets_in_use(self) -> int:
        now = time.monotonic()
        while self.socket_releases and self.socket_releases[0] <= now:
            self.socket_releases.popleft()
        return SOCKETS_PER_CALL * (len(self.calls) + len(self.socket_releases))

    def wait_socket_budget(self, timeout: float = 2.0) -> None:
        """Poll until a new call's sockets fit in the ioqueue (see IOQUEUE_HANDLES)."""
        limit = IOQUEUE_HANDLES - IOQUEUE_RESERVED
        deadline = time.monotonic() + timeout
        while self.sockets_in_use() + SOCKETS_PER_CALL > limit:
            if time.monotonic() > deadline:
                raise OpError(f"too many calls set up in the last {SOCKET_FREE_DELAY_S}s: "
                              "pjsip's socket table is full; retry later")
            self.pump(10)

    def pump(self, ms: int) -> None:
        """Run the event loop from inside an op (bounded waits)."""
        assert self.ep is not None
        self.ep.libHandleEvents(ms)
        self.after_poll()
        self.flush()

    def op_make_call(self, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
        acc = self.require_account()
        assert self.ep is not None
        target = args.get("target")
        if not isinstance(target, str) or not target:
            raise OpError("missing 'target' (a sip: URI)")
        if self.ep.utilVerifySipUri(target) != 0:
            raise OpError(f"bad target URI {target!r}")
        headers = args.get("headers") or {}
        if not isinstance(headers, dict):
            raise OpError("'headers' must be an object")
        self.wait_socket_budget()
        handle = self.new_handle()
        call = AgentCall(self, acc, handle)
        prm = pj.CallOpParam(True)
        for name, value in headers.items():
            hdr = pj.SipHeader()
            hdr.hName = str(name)
            hdr.hValue = str(value)
            prm.txOption.headers.append(hdr)
        self.calls[handle] = call
        try:
            call.makeCall(target, prm)
        except pj.Error:
            if self.calls.pop(handle, None) is not None:
                # media may have been created and closed: count its sockets as closing
                self.socket_releases.append(time.monotonic() + SOCKET_FREE_DELAY_S)
            raise
        cid = None if call.gone else self.note_callid(call)
        if cid is None:  # ended inside makeCall: its Call-ID was noted by onCallState
            cid = next((k for k, v in self.callids.items() if v == handle), None)
        return {"call": handle, "sip_call_id": cid}

    def op_answer(self, req_id: Any, args: dict[str, Any]) -> None:
        call = self.get_call(args)
        code = int(args.get("code") or 200)
        self.answer(call, code, args.get("reason"))

    def answer(self, call: AgentCall, code: int, reason: Any = None) -> None:
        ci = call.getInfo()
        if ci.role != pj.PJSIP_ROLE_UAS or ci.state not in (
            pj.PJSIP_INV_STATE_INCOMING, pj.PJSIP_INV_STATE_EARLY
        ):
            raise OpError(f"call {call.handle} is not an unanswered incoming call "
                          f"(state {state_name(ci.state)})")
        prm = pj.CallOpParam(True)
        prm.statusCode = code
        if reason:
            prm.reason = str(reason)
        if code >= 300:
            call.hangup(prm)
        else:
            call.answer(prm)

    def op_respond(self, req_id: Any, args: dict[str, Any]) -> None:
        code = int(args["code"])
        if not 100 <= code <= 699:
            raise OpError(f"status code {code} not in 100-699")
        call = self.get_call(args)
        self.answer(call, code, args.get("reason"))

    def op_hangup(self, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
        handle = args.get("call")
        if isinstance(handle, str) and handle in self.ended and handle not in self.calls:
            return {"already_ended": True}
        call = self.get_call(args)
        prm = pj.CallOpParam(True)
        code = args.get("code")
        if code:
            prm.statusCode = int(code)
        if args.get("reason"):
            prm.reason = str(args["reason"])
        call.hangup(prm)
        return {"already_ended": False}

    def defer(self, call: AgentCall, req_id: Any, op: str, kind: str, args: dict[str, Any],
              send: Callable[[], None]) -> _Deferred:
        """Run ``send`` and reply when the SIP outcome of ``kind`` arrives on ``call``."""
        if any(p.kind == kind for p in self.pending_ops.get(call.handle, [])):
            raise OpError(f"call {call.handle}: a previous {op} is still waiting for its answer")
        pending = PendingOp(req_id, op, kind, float(args.get("timeout", 10.0)))
        self.pending_ops.setdefault(call.handle, []).append(pending)
        try:
            send()
        except BaseException:
            self.drop_pending(call.handle, pending)
            raise
        return DEFERRED

    def drop_pending(self, handle: str, pending: PendingOp) -> None:
        ops = self.pending_ops.get(handle)
        if ops and pending in ops:
            ops.remove(pending)
            if not ops:
                del self.pending_ops[handle]

    def resolve(self, handle: str, kind: str, ok: bool, result: dict[str, Any] | None = None,
                error: str | None = None) -> None:
        for pending in list(self.pending_ops.get(handle, [])):
            if pending.kind == kind:
                self.drop_pending(handle, pending)
                self.reply(pending.req_id, ok, result,
                           error=f"{pending.op}: {error}" if error else None)

    def op_hold(self, req_id: Any, args: dict[str, Any]) -> Any:
        call = self.get_call(args)
        self.require_confirmed(call)
        return self.defer(call, req_id, "hold", "reinvite", args,
                          lambda: call.setHold(pj.CallOpParam(True)))

    def op_retrieve(self, req_id: Any, args: dict[str, Any]) -> Any:
        call = self.get_call(args)
        self.require_confirmed(call)
        prm = pj.CallOpParam(True)
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        return self.defer(call, req_id, "retrieve", "reinvite", args, lambda: call.reinvite(prm))

    def op_transfer(self, req_id: Any, args: dict[str, Any]) -> Any:
        call = self.get_call(args)
        self.require_confirmed(call)
        target = args.get("target")
        if not isinstance(target, str) or not target:
            raise OpError("missing 'target' (a sip: URI)")
        assert self.ep is not None
        if self.ep.utilVerifySipUri(target) != 0:
            raise OpError(f"bad target URI {target!r}")
        return self.defer(call, req_id, "transfer", "refer", args,
                          lambda: call.xfer(target, pj.CallOpParam(True)))

    def op_transfer_attended(self, req_id: Any, args: dict[str, Any]) -> Any:
        call = self.get_call(args)
        dest = self.get_call(args, "dest_call")
        if dest is call:
            raise OpError("call and dest_call are the same call")
        self.require_confirmed(call)
        self.require_confirmed(dest)
        return self.defer(call, req_id, "transfer_attended", "refer", args,
                          lambda: call.xferReplaces(dest, pj.CallOpParam(True)))

    def op_dtmf(self, req_id: Any, args: dict[str, Any]) -> Any:
        call = self.get_call(args)
        self.require_confirmed(call)
        digits = str(args.get("digits") or "").upper()
        if not digits:
            raise OpError("no digits")
        bad = sorted(set(digits) - DTMF_DIGITS)
        if bad:
            raise OpError(f"invalid DTMF digit(s) {''.join(bad)!r} (allowed 0-9 * # A-D)")
        method = str(args.get("method") or "rfc2833").lower()
        if method not in ("rfc2833", "info"):
            raise OpError(f"unknown DTMF method {method!r} (rfc2833 or info)")
        interval = int(args.get("interval_ms", 100))
        if interval < 0:
            raise OpError("interval_ms must be >= 0")
        job = DtmfJob(req_id, call.handle, digits, method, interval)
        self.dtmf_jobs.append(job)
        self.step_dtmf(job)
        return DEFERRED

    def op_play(self, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
        call = self.get_call(args)
        self.require_confirmed(call)
        path = args.get("path")
        if not isinstance(path, str) or not path:
            raise OpError("missing 'path'")
        if not os.path.isfile(path):
            raise OpError(f"file not found: {path}")
        if not os.access(path, os.R_OK):
            raise OpError(f"file not readable: {path}")
        try:
            media = call.getAudioMedia(-1)
        except pj.Error as exc:
            raise OpError(f"call {call.handle} has no active audio: {pj_error_text(exc)}")
        play_id = self.next_play
        self.next_play += 1
        player = AgentPlayer(self, play_id, call.handle, path)
        try:
            player.createPlayer(path, pj.PJMEDIA_FILE_NO_LOOP)
        except pj.Error as exc:
            raise OpError(f"cannot play {path}: {pj_error_text(exc)}")
        player.startTransmit(media)
        self.players[play_id] = player
        return {"play": play_id}

    def op_reset(self, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
        timeout = float(args.get("timeout", 3.0))
        for job in self.dtmf_jobs:
            self.reply(job.req_id, False, error="dtmf: cancelled by reset")
        self.dtmf_jobs.clear()
        for handle in list(self.pending_ops):
            for kind in ("reinvite", "refer"):
                self.resolve(handle, kind, False, error="cancelled by reset")
        left = self.hangup_all(timeout)
        for play_id in list(self.players):
            self.bury(self.players.pop(play_id))
        if left:
            raise OpError(f"{len(left)} call(s) did not end in {timeout}s: {', '.join(left)}; "
                          "discard this agent")
        self.drop_account()
        if self.ep is not None and self.transport_id is not None:
            self.apply_codecs(None)
        if len(self.callids) > 2000:
            # Late messages of old calls (a 200 to a BYE) then just get call=null.
            self.callids = {k: v for k, v in self.callids.items() if v in self.calls}
        gc.collect()
        return {}

    def hangup_all(self, timeout: float) -> list[str]:
        """Hang up every call and poll until they are gone (bounded). Returns leftovers."""
        assert self.ep is not None
        for handle, call in list(self.calls.items()):
            if call.getId() < 0:
                self.forget_call(call, 0, "dropped before set-up")
                continue
            try:
                call.hangup(pj.CallOpParam(True))
            except pj.Error as exc:
                log(f"hangup {handle}: {pj_error_text(exc)}")
        deadline = time.monotonic() + timeout
        forced = False
        while self.calls and time.monotonic() < deadline:
            self.pump(10)
            if not forced and time.monotonic() > deadline - timeout / 2:
                forced = True
                self.ep.hangupAllCalls()
        return sorted(self.calls)

    def drop_account(self) -> None:
        if self.acc is None:
            return
        try:
            self.acc.shutdown()
        except pj.Error as exc:
            log(f"account shutdown: {pj_error_text(exc)}")
        self.acc = None
        self.acc_uri = None

    def op_debug_abort(self, req_id: Any, args: dict[str, Any]) -> None:
        """Test hook: die like a pjlib C assert does (SIGABRT), to exercise crash reports."""
        self.flush()
        log(f"debug_abort requested: {args.get('message', 'aborting')}")
        os.abort()

    def op_shutdown(self, req_id: Any, args: dict[str, Any]) -> Any:
        self.reply(req_id, True, {})
        self.flush()
        self.stopping = True
        try:
            if self.ep is not None:
                self.hangup_all(1.0)
                self.flush()
                self.ep.libDestroy(pj.PJSUA_DESTROY_NO_RX_MSG)
        except Exception:
            log("shutdown failed:\n" + traceback.format_exc())
            hard_exit(1)
        hard_exit(0)

    # ----------------------------------------------------------------- timers

    def after_poll(self) -> None:
        while True:
            try:
                kind, data = self.posted.get_nowait()
            except queue.Empty:
                break
            if kind == "eof":
                player = self.players.pop(data, None)
                if player is not None:
                    self.emit("play_done", call=player.handle, path=player.path)
                    self.bury(player, eof_seen=True)
        now = time.monotonic()
        for job in list(self.dtmf_jobs):
            if job.reply_at is not None:
                if now >= job.reply_at:
                    self.dtmf_jobs.remove(job)
                    self.reply(job.req_id, True, {"sent": job.digits})
            elif now >= job.next_at:
                self.step_dtmf(job)
        for handle, ops in list(self.pending_ops.items()):
            for pending in list(ops):
                if now >= pending.deadline:
                    self.drop_pending(handle, pending)
                    what = "final response to the re-INVITE" if pending.kind == "reinvite" \
                        else "response to the REFER"
                    self.reply(pending.req_id, False,
                               error=f"{pending.op}: no {what} on {handle} in time")
        for handle, call in list(self.calls.items()):
            if call.child_of is not None and call.getId() < 0 and now - call.born > 1.0:
                self.forget_call(call, 500, f"call for transfer/replace on {call.child_of} "
                                            "was never created")
        if self.graveyard:
            # Destroyed here, on the main thread, outside any callback.
            keep = [(t, obj) for t, obj in self.graveyard if t > now]
            if len(keep) != len(self.graveyard):
                self.graveyard = keep
        if now - self.last_gc > 10.0:
            self.last_gc = now
            gc.collect()

    def bury(self, player: AgentPlayer, eof_seen: bool = False) -> None:
        """Destroy a player later. Its EOF is delivered on pjmedia's event thread; if that
        raced with the destructor the director would call into a dying Python object. A
        player whose EOF was seen, or that nothing has read for a while (its call is gone),
        can no longer fire."""
        delay = 0.0 if eof_seen else 0.3
        self.graveyard.append((time.monotonic() + delay, player))

    def step_dtmf(self, job: DtmfJob) -> None:
        call = self.calls.get(job.handle)
        if call is None or call.gone:
            self.dtmf_jobs.remove(job)
            self.reply(job.req_id, False,
                       error=f"dtmf: call {job.handle} ended after {job.index} digit(s)")
            return
        digit = job.digits[job.index]
        prm = pj.CallSendDtmfParam()
        prm.method = (pj.PJSUA_DTMF_METHOD_SIP_INFO if job.method == "info"
                      else pj.PJSUA_DTMF_METHOD_RFC2833)
        prm.digits = digit
        prm.duration = job.duration
        try:
            call.sendDtmf(prm)
        except pj.Error as exc:
            self.dtmf_jobs.remove(job)
            self.reply(job.req_id, False, error=f"dtmf: digit {job.index + 1} ({digit}): "
                                                f"{pj_error_text(exc)}")
            return
        job.index += 1
        now = time.monotonic()
        if job.method == "rfc2833":
            # The stream queues digits: each one plays for `duration`, then its end
            # packets go out. Track when the queue drains.
            job.busy_until = max(now, job.busy_until) + (job.duration + 20) / 1000.0
        if job.index >= len(job.digits):
            if job.method == "rfc2833":
                # Reply once the last tone (and its end packets) really left.
                job.reply_at = job.busy_until + 0.04
            else:
                self.dtmf_jobs.remove(job)
                self.reply(job.req_id, True, {"sent": job.digits})
        else:
            job.next_at = now + job.interval

    # ----------------------------------------------------------------- callbacks

    def on_sip_log(self, msg: str) -> None:
        first, _, rest = msg.partition("\n")
        direction = "tx" if first.startswith("TX") else "rx"
        text = rest.rsplit("--end msg--", 1)[0]
        if text.endswith("\n"):
            text = text[:-1]
        summary = text.split("\r\n", 1)[0].split("\n", 1)[0].strip()
        peer = None
        m = re.search(r" (?:to|from) (\S+ \S+?):?$", first)
        if m:
            peer = m.group(1)
        cm = _CALL_ID_RE.search(text)
        cid = cm.group(1) if cm else None
        self.emit("sip", dir=direction, summary=summary, call=self.callids.get(cid) if cid else None,
                  peer=peer, text=text, _callid=cid)

    def on_incoming(self, prm: "pj.OnIncomingCallParam") -> None:
        assert self.acc is not None
        handle = self.new_handle()
        call = AgentCall(self, self.acc, handle, prm.callId)
        self.calls[handle] = call
        ci = call.getInfo()
        if ci.callIdString:
            self.callids[ci.callIdString] = handle
        try:
            headers = parse_headers(prm.rdata.wholeMsg)
        except Exception:
            headers = {}
        if self.auto_ringing:
            try:
                p = pj.CallOpParam(True)
                p.statusCode = 180
                call.answer(p)
            except pj.Error as exc:
                log(f"auto 180 on {handle}: {pj_error_text(exc)}")
        self.emit("incoming", call=handle, **{"from": ci.remoteUri, "to": ci.localUri},
                  headers=headers, sip_call_id=ci.callIdString)

    def on_call_state(self, call: AgentCall) -> None:
        if call.gone:
            return
        ci = call.getInfo()
        if ci.callIdString:
            self.callids[ci.callIdString] = call.handle
        st = ci.state
        if st == pj.PJSIP_INV_STATE_CONFIRMED:
            if not call.confirmed:
                call.confirmed = True
                self.emit("confirmed", call=call.handle)
        elif st == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.forget_call(call, ci.lastStatusCode, ci.lastReason)

    def forget_call(self, call: AgentCall, code: int, reason: str) -> None:
        """Drop the call from the registry. Called inside its DISCONNECTED callback, so
        the Python object (and its C++ Call) dies when the callback returns, before
        pjsua can recycle its id."""
        if call.gone:
            return
        call.gone = True
        self.calls.pop(call.handle, None)
        self.socket_releases.append(time.monotonic() + SOCKET_FREE_DELAY_S)
        self.ended.add(call.handle)
        for kind in ("reinvite", "refer"):
            self.resolve(call.handle, kind, False, error=f"call {call.handle} ended ({code} {reason})")
        for play_id, player in list(self.players.items()):
            if player.handle == call.handle:
                self.bury(self.players.pop(play_id))
        self.emit("disconnected", call=call.handle, code=int(code), reason=str(reason))

    def on_call_tsx(self, call: AgentCall, prm: "pj.OnCallTsxStateParam") -> None:
        if call.gone:
            return
        e = prm.e
        if e.type != pj.PJSIP_EVENT_TSX_STATE:
            return
        ts = e.body.tsxState
        tsx = ts.tsx
        if tsx.role != pj.PJSIP_ROLE_UAC or tsx.method != "INVITE":
            return
        code = int(tsx.statusCode)
        if not call.confirmed:
            if ts.type == pj.PJSIP_EVENT_RX_MSG and code in (180, 183):
                self.emit("ringing", call=call.handle, code=code)
            return
        # A re-INVITE of ours (hold/retrieve) got its final answer (or timed out).
        if code >= 200 and tsx.state in (pj.PJSIP_TSX_STATE_COMPLETED,
                                         pj.PJSIP_TSX_STATE_TERMINATED):
            if code < 300:
                self.resolve(call.handle, "reinvite", True, {"code": code})
            else:
                self.resolve(call.handle, "reinvite", False,
                             error=f"re-INVITE answered {code} {tsx.statusText}")

    def on_rx_offer(self, call: AgentCall, prm: "pj.OnCallRxOfferParam") -> None:
        direction = sdp_direction(prm.offer.wholeSdp)
        held = direction in ("sendonly", "inactive")
        if held and not call.remote_held:
            call.remote_held = True
            self.emit("held", call=call.handle, direction=direction)
        elif not held and call.remote_held:
            call.remote_held = False
            self.emit("retrieved", call=call.handle, direction=direction)

    def on_dtmf(self, call: AgentCall, prm: "pj.OnDtmfDigitParam") -> None:
        method = "info" if prm.method == pj.PJSUA_DTMF_METHOD_SIP_INFO else "rfc2833"
        self.emit("dtmf", call=call.handle, digit=str(prm.digit).upper(), method=method)

    def make_child(self, parent: AgentCall) -> AgentCall:
        assert self.acc is not None
        handle = self.new_handle()
        child = AgentCall(self, self.acc, handle)
        child.child_of = parent.handle
        self.calls[handle] = child
        return child

    def on_transfer_request(self, call: AgentCall, prm: "pj.OnCallTransferRequestParam") -> None:
        if self.acc is None or prm.statusCode // 100 != 2:
            return
        child = self.make_child(call)
        prm.newCall = child
        self.emit("transferred", call=call.handle, target=prm.dstUri, new_call=child.handle)

    def on_transfer_status(self, call: AgentCall, prm: "pj.OnCallTransferStatusParam") -> None:
        prm.cont = True
        code = int(prm.statusCode)
        final = bool(prm.finalNotify)
        # The first status after a REFER is its own response (2xx → 100 "Accepted").
        if final and code >= 300:
            self.resolve(call.handle, "refer", False, error=f"REFER failed: {code} {prm.reason}")
        else:
            self.resolve(call.handle, "refer", True, {"code": code})
        self.emit("notify", call=call.handle, code=code, reason=prm.reason, final=final)

    def on_replace_request(self, call: AgentCall, prm: "pj.OnCallReplaceRequestParam") -> None:
        if self.acc is None or prm.statusCode >= 300:
            return
        child = self.make_child(call)
        prm.newCall = child

    def on_replaced(self, call: AgentCall, prm: "pj.OnCallReplacedParam") -> None:
        new_id = prm.newCallId
        child = next((c for c in self.calls.values()
                      if c.child_of == call.handle and c.getId() == new_id), None)
        if child is None:
            assert self.acc is not None
            child = AgentCall(self, self.acc, self.new_handle(), new_id)
            child.child_of = call.handle
            self.calls[child.handle] = child
            prm.newCall = child
        self.note_callid(child)
        self.emit("replaced", call=call.handle, new_call=child.handle)


def _brief(args: dict[str, Any]) -> str:
    text = " ".join(f"{k}={v!r}" for k, v in args.items())
    return text if len(text) <= 200 else text[:197] + "..."


def state_name(st: int) -> str:
    names = {
        0: "NULL", 1: "CALLING", 2: "INCOMING", 3: "EARLY", 4: "CONNECTING",
        5: "CONFIRMED", 6: "DISCONNECTED",
    }
    return names.get(st, str(st))


def pj_error_text(exc: "pj.Error") -> str:
    """pjsua2's reason text and status (``info()`` also has the C expression and file)."""
    try:
        return f"{exc.reason} (status={exc.status})"
    except Exception:
        return str(exc)


def main(argv: list[str] | None = None) -> int:
    import argparse

    global _AGENT_NAME
    parser = argparse.ArgumentParser(prog="python -m pytest_sipflow.agent")
    parser.add_argument("--fd", type=int, required=True, help="inherited socket fd (socketpair end)")
    parser.add_argument("--name", default="agent")
    ns = parser.parse_args(argv)
    _AGENT_NAME = ns.name
    # Automatic GC could run a SWIG destructor on the reader thread (unregistered with
    # pjlib → assert → abort). The main loop collects explicitly instead.
    gc.disable()
    sock = socket.socket(fileno=ns.fd)
    server = AgentServer(sock, ns.name)
    try:
        server.init_endpoint()
    except Exception:
        log("endpoint init failed:\n" + traceback.format_exc())
        hard_exit(2)
    threading.Thread(target=server.reader_loop, name="sipflow-agent-reader", daemon=True).start()
    server.emit("ready", pid=os.getpid(), pjsua2=server.ep.libVersion().full if server.ep else None)
    server.flush()
    try:
        server.run()
    except Exception:
        log("main loop crashed:\n" + traceback.format_exc())
        hard_exit(1)
    hard_exit(0)
    return 0
