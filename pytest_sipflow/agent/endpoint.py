"""The agent's pjsua2 side: one Endpoint, its callbacks and the op implementations.

This is the only module of pytest-sipflow that imports pjsua2. It runs in the agent
process only (``python -m pytest_sipflow.agent``). Jobs kept elsewhere: SIP text in
``pytest_sipflow.sip.message``, bookkeeping in ``book``, the channel in ``loop``.

* Every pjsua2 call runs on the **main thread**: ``threadCnt = 0``, media on the SIP
  ioqueue, ``mainThreadOnly`` so work from pjlib's own threads (log lines) is deferred
  to ``libHandleEvents``. The main thread blocks in ``libHandleEvents`` until I/O, a
  pjsip timer or the next due time of our own books (DTMF, deadlines); requests and
  posted facts wake it through a loopback UDP transport of its own (see ``loop``).
* Automatic GC is disabled so a SWIG destructor can never run on the reader thread;
  the main thread collects explicitly.
* Callbacks only copy plain data into the outbox (events, in order).
* Calls live in a ``CallBook`` and are dropped inside their DISCONNECTED callback, so a
  stale Call can never be collected after its pjsua id was recycled.
* The null sound device clocks the conference bridge (RTP, RFC 2833) only while a call
  or player exists: idle, its 20 ms clock thread alone cost ≈ 0.4 % of a core.
"""

from __future__ import annotations

import base64
import gc
import os
import re
import socket
import time
import traceback
from typing import Any, Callable

import pjsua2 as pj

from ..sip import DTMF_DIGITS, LOOPBACK
from ..sip.message import parse, raw_of, readable, sdp_direction
from .book import CallBook, DtmfJob, PendingOps, SocketBudget, next_wake
from .loop import Channel, brief, hard_exit, log, set_name

#: As the scenario format's sipInstance default (the library default would pick speex).
DEFAULT_CODECS = ("PCMU", "PCMA")
#: Longest block in libHandleEvents: idle, and while calls are up (pjsua2 defers log
#: lines of other threads to the next libHandleEvents; keep those timely in calls).
#: Idle, nothing is due: requests and media-thread events wake the loop themselves, so a
#: long block only saves the ~1 ms of bookkeeping each empty turn costs.
IDLE_WAIT_S = 5.0
BUSY_WAIT_S = 0.1
#: The bridge clock stops this long after the last call or player ended, not at once:
#: stopping it joins its 20 ms clock thread, which would delay the events of the call's
#: end and every agent reset; starting and stopping it per call also costs.
CLOCK_IDLE_S = 2.0
#: A REFER/Replaces child that pjsua did not create within this time is reported ended.
CHILD_GRACE_S = 1.0

#: Transports an account can use; UDP is created by ``start``, TCP/TLS on first use.
TRANSPORT_TYPES = {"UDP": pj.PJSIP_TRANSPORT_UDP, "TCP": pj.PJSIP_TRANSPORT_TCP,
                   "TLS": pj.PJSIP_TRANSPORT_TLS}
#: Listener port of each transport, relative to the agent's UDP SIP port.
TRANSPORT_PORT_OFFSET = {"UDP": 0, "TCP": 0, "TLS": 1}
DEFAULT_REG_TIMEOUT_S = 10.0
DEFAULT_EXPIRES_S = 300

_LOG_HEAD_RE = re.compile(r"^(RX|TX) (\d+) bytes .* (?:from|to) (\S+) (\S+):$")
_DROPPING_RE = re.compile(r"^Dropping (\d+) bytes packet from (\S+) (\S+):(\d+) ?(.*)$", re.S)
_ERROR_PKT_RE = re.compile(r"^Error processing packet from (\S+):(\d+): (.*?):\n(.*)"
                           r"\n-- end of packet\.\s*$", re.S)


class OpError(Exception):
    """A refused request; its text is the reply's ``error``."""


class _Deferred:
    """Returned by an op whose reply is sent later (dtmf, hold, transfer, …)."""


DEFERRED = _Deferred()


def pj_error_text(exc: "pj.Error") -> str:
    """pjsua2's reason text and status (``info()`` also has the C expression and file)."""
    try:
        return f"{readable(exc.reason)} (status={exc.status})"
    except Exception:
        return str(exc)


def state_name(st: int) -> str:
    names = {0: "NULL", 1: "CALLING", 2: "INCOMING", 3: "EARLY", 4: "CONNECTING",
             5: "CONFIRMED", 6: "DISCONNECTED"}
    return names.get(st, str(st))


def sip_uri(value: str, transport: str) -> str:
    """``host[:port]`` or a URI → a sip: URI with ``;transport=`` for TCP/TLS."""
    uri = value if value.startswith(("sip:", "sips:")) else f"sip:{value}"
    if transport != "UDP" and ";transport=" not in uri.lower():
        uri += f";transport={transport.lower()}"
    return uri


def uri_host(uri: str) -> str:
    """The host of a sip: URI (without port and parameters)."""
    rest = uri.split(":", 1)[1].split(";", 1)[0]
    rest = rest.rsplit("@", 1)[-1]
    if rest.startswith("["):
        return rest.split("]", 1)[0] + "]"
    return rest.split(":", 1)[0]


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


#: RFC 2976 INFO body pjsua writes for a DTMF digit (``application/dtmf-relay``).
DTMF_INFO_TYPE = "application/dtmf-relay"


def tls_settings(tls: Any) -> dict[str, Any]:
    """The TLS options of ``configure`` with their defaults (verify the server)."""
    if tls is None:
        tls = {}
    if not isinstance(tls, dict):
        raise OpError("'tls' must be an object")
    unknown = set(tls) - {"ca_file", "cert_file", "key_file", "key_password",
                          "verify_server", "verify_client"}
    if unknown:
        raise OpError(f"unknown tls option(s): {', '.join(sorted(unknown))}")
    out = {k: str(tls.get(k) or "") for k in ("ca_file", "cert_file", "key_file",
                                              "key_password")}
    for key in ("ca_file", "cert_file", "key_file"):
        if out[key] and not os.path.isfile(out[key]):
            raise OpError(f"tls {key}: file not found: {out[key]}")
    out["verify_server"] = bool(tls.get("verify_server", True))
    out["verify_client"] = bool(tls.get("verify_client", False))
    return out


# --------------------------------------------------------------------------- pjsua2 subclasses


class AgentLogWriter(pj.LogWriter):
    """pjsua's log: message logs (level 4) become ``sip`` events, errors go to stderr."""

    def __init__(self, agent: "AgentEndpoint") -> None:
        super().__init__()
        self.agent = agent

    def write(self, entry: "pj.LogEntry") -> None:
        try:
            self.agent.on_log(entry.level, entry.msg)
        except Exception:
            log("log writer failed:\n" + traceback.format_exc())


class AgentAccount(pj.Account):
    def __init__(self, agent: "AgentEndpoint") -> None:
        super().__init__()
        self.agent = agent

    def onIncomingCall(self, prm: "pj.OnIncomingCallParam") -> None:
        self.agent.guard("onIncomingCall", self.agent.on_incoming, prm)

    def onRegState(self, prm: "pj.OnRegStateParam") -> None:
        self.agent.guard("onRegState", self.agent.on_reg_state, prm)

    def onInstantMessage(self, prm: "pj.OnInstantMessageParam") -> None:
        self.agent.guard("onInstantMessage", self.agent.on_message, prm)

    def onInstantMessageStatus(self, prm: "pj.OnInstantMessageStatusParam") -> None:
        self.agent.guard("onInstantMessageStatus", self.agent.on_message_status, prm)


class AgentCall(pj.Call):
    """A call leg. Holds plain bookkeeping only; pjsua2 work is done by the endpoint."""

    def __init__(self, agent: "AgentEndpoint", acc: AgentAccount, handle: str,
                 call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(acc, call_id)
        self.agent = agent
        self.handle = handle
        self.remote_held = False
        self.confirmed = False
        self.gone = False
        self.born = time.monotonic()
        #: set for calls created for a REFER / Replaces before pjsua gives them an id
        self.child_of: str | None = None

    # Each callback delegates through guard(): an exception is logged and reported as
    # an event instead of being printed and swallowed by SWIG.
    def onCallState(self, prm: "pj.OnCallStateParam") -> None:
        self.agent.guard("onCallState", self.agent.on_call_state, self)

    def onCallTsxState(self, prm: "pj.OnCallTsxStateParam") -> None:
        self.agent.guard("onCallTsxState", self.agent.on_call_tsx, self, prm)

    def onCallRxOffer(self, prm: "pj.OnCallRxOfferParam") -> None:
        self.agent.guard("onCallRxOffer", self.agent.on_rx_offer, self, prm)

    def onDtmfDigit(self, prm: "pj.OnDtmfDigitParam") -> None:
        self.agent.guard("onDtmfDigit", self.agent.on_dtmf, self, prm)

    def onCallTransferRequest(self, prm: "pj.OnCallTransferRequestParam") -> None:
        self.agent.guard("onCallTransferRequest", self.agent.on_transfer_request, self, prm)

    def onCallTransferStatus(self, prm: "pj.OnCallTransferStatusParam") -> None:
        self.agent.guard("onCallTransferStatus", self.agent.on_transfer_status, self, prm)

    def onCallReplaceRequest(self, prm: "pj.OnCallReplaceRequestParam") -> None:
        self.agent.guard("onCallReplaceRequest", self.agent.on_replace_request, self, prm)

    def onCallReplaced(self, prm: "pj.OnCallReplacedParam") -> None:
        self.agent.guard("onCallReplaced", self.agent.on_replaced, self, prm)


class AgentPlayer(pj.AudioMediaPlayer):
    """WAV player; EOF arrives on pjmedia's event thread, so it is only posted."""

    def __init__(self, agent: "AgentEndpoint", play_id: int, handle: str, path: str) -> None:
        super().__init__()
        self.agent = agent
        self.play_id = play_id
        self.handle = handle
        self.path = path

    def onEof2(self) -> None:
        # Not the main thread: no pjsua2 call here, just hand the fact over (and wake).
        self.agent.ch.post("eof", self.play_id)


# --------------------------------------------------------------------------- the endpoint


class AgentEndpoint:
    def __init__(self, sock: socket.socket, name: str) -> None:
        self.name = name
        self.ch = Channel(sock, self.orphaned)
        self.ep: pj.Endpoint | None = None
        self.log_writer: AgentLogWriter | None = None
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
        #: "Dropping N bytes packet from …" waiting for its "Dropped packet:" dump
        self._dropping: tuple[str, str, str] | None = None

    # ----------------------------------------------------------------- plumbing

    def emit(self, event: str, **fields: Any) -> None:
        self.dirty = True
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

    def note_callid(self, call: AgentCall) -> str | None:
        try:
            cid = readable(call.getInfo().callIdString)
        except pj.Error:
            return None
        self.calls.note_callid(cid, call.handle)
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
        # Once open, keep the null device clocking the bridge (RTP, RFC 2833 need it);
        # media_clock() opens it for calls and closes it when idle.
        cfg.medConfig.sndAutoCloseTime = -1
        ep.libInit(cfg)
        ep.audDevManager().setNoDev()
        ep.libStart()
        self.ep = ep
        for ci in ep.codecEnum2():
            self.default_codecs[ci.codecId] = ci.priority
        # The wake-up transport (see loop): loopback, ephemeral port, no account uses it.
        tcfg = pj.TransportConfig()
        tcfg.port = 0
        tcfg.boundAddress = LOOPBACK
        self.wake_transport = ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        info = ep.transportGetInfo(self.wake_transport)
        self.ch.wake_address = (LOOPBACK, int(info.localName.rsplit(":", 1)[1]))

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

    def run(self) -> None:
        """Main loop: every pjsua2 call of the process happens here."""
        assert self.ep is not None
        ep = self.ep
        while not self.stopping:
            while not self.stopping:
                req = self.ch.next_request()
                if req is None:
                    break
                self.handle_request(req)
                self.flush()
            if self.stopping:
                break
            ep.libHandleEvents(int(self.wait_time() * 1000))
            self.housekeeping()
            self.flush()

    def wait_time(self) -> float:
        """How long the loop may block: until our next due time, pjsip's own timers
        bound the wait inside libHandleEvents."""
        now = time.monotonic()
        due: list[float | None] = [self.pending.next_deadline(),
                                   self.last_gc + 10.0 if self.dirty else None]
        due += [job.wake_at() for job in self.dtmf_jobs]
        due += [t for t, _ in self.graveyard]
        due += [c.born + CHILD_GRACE_S for c in self.calls.live.values() if c.child_of]
        if self.clock_on and self.idle_since is not None:
            due.append(self.idle_since + CLOCK_IDLE_S)
        busy = bool(self.calls.live or self.players)
        return next_wake(now, *due, idle_max=BUSY_WAIT_S if busy else IDLE_WAIT_S)

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
            self.dirty = True
            log(f"req {req_id} {op} {brief(args)}")
        try:
            if op not in ("start", "shutdown", "ping", "reset", "debug_abort") \
                    and self.transport_id is None:
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

    def op_ping(self, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
        return {"pid": os.getpid(), "calls": sorted(self.calls.live), "sip_port": self.sip_port,
                "configured": self.acc is not None,
                "media_sockets": self.budget.in_use(len(self.calls)),
                "media_clock": self.clock_on}

    def op_start(self, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
        if self.transport_id is not None:
            raise OpError(f"already started on port {self.sip_port}")
        first = int(args["sip_port"])
        last = int(args.get("sip_port_last", first + 20))
        self.rtp_port = int(args.get("rtp_port", 4000))
        self.rtp_port_count = int(args.get("rtp_port_count", 100))
        self.bind = str(args.get("bind_address") or LOOPBACK)
        if not (0 < first <= last < 65536):
            raise OpError(f"bad SIP port range {first}-{last}")
        assert self.ep is not None
        errors: list[str] = []
        for port in range(first, last + 1, 2):
            tcfg = pj.TransportConfig()
            tcfg.port = port
            tcfg.boundAddress = self.bind
            tcfg.publicAddress = self.bind
            try:
                self.transport_id = self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
            except pj.Error as exc:
                errors.append(f"{port}: {readable(exc.reason)}")
                continue
            self.sip_port = port
            self.transports["UDP"] = self.transport_id
            self.local_addr["UDP"] = f"{self.bind}:{port}"
            return {"sip_port": port}
        raise OpError(f"no free UDP port on {self.bind} in {first}-{last} (step 2); "
                      f"last error {errors[-1] if errors else '-'}")

    def op_configure(self, req_id: Any, args: dict[str, Any]) -> Any:
        """Create the account: local (``sip:dn@bind:port``) or, with ``registrar``, real
        mode (AOR ``sip:dn@domain``, digest credentials, optional registration)."""
        assert self.ep is not None and self.transport_id is not None
        if self.acc is not None:
            if self.calls.live:
                raise OpError("already configured and calls are up (send 'reset' first)")
            self.drop_account()
        dn = str(args.get("dn") or "")
        display = str(args.get("display") or "")
        transport = str(args.get("transport") or "UDP").upper()
        if transport not in TRANSPORT_TYPES:
            raise OpError(f"unknown transport {transport!r} (UDP, TCP or TLS)")
        registrar = args.get("registrar")
        if registrar is not None and (not isinstance(registrar, str) or not registrar):
            raise OpError("'registrar' must be a host[:port] or a sip: URI")
        codecs = args.get("codecs") or list(DEFAULT_CODECS)
        self.auto_ringing = bool(args.get("auto_ringing", True))
        tid = self.ensure_transport(transport, args.get("tls"))
        self.apply_codecs(codecs)
        user = f"{dn}@" if dn else ""
        acfg = pj.AccountConfig()
        if registrar:
            reg_uri = sip_uri(registrar, transport)
            domain = str(args.get("domain") or uri_host(reg_uri))
            uri = f"sip:{user}{domain}"
            acfg.regConfig.registrarUri = reg_uri
            acfg.regConfig.timeoutSec = int(args.get("expires") or DEFAULT_EXPIRES_S)
            acfg.regConfig.retryIntervalSec = 0  # a failure is reported, not retried
            acfg.regConfig.headers = sip_headers(args.get("headers"))
            self.registrar = reg_uri
        else:
            tparam = "" if transport == "UDP" else f";transport={transport.lower()}"
            uri = f"sip:{user}{self.bind}:{self.sip_port + TRANSPORT_PORT_OFFSET[transport]}" \
                  f"{tparam}"
            self.registrar = None
        proxy = args.get("outbound_proxy") or (f"{self.registrar};lr" if self.registrar else None)
        if proxy:
            acfg.sipConfig.proxies.append(sip_uri(str(proxy), transport))
        password = args.get("password")
        if password is not None or args.get("username"):
            cred = pj.AuthCredInfo("digest", str(args.get("realm") or "*"),
                                   str(args.get("username") or dn), 0, str(password or ""))
            acfg.sipConfig.authCreds.append(cred)
        if display:
            quoted = display.replace("\\", "\\\\").replace('"', '\\"')
            id_uri = f'"{quoted}" <{uri}>'
        else:
            id_uri = f"<{uri}>"
        acfg.idUri = id_uri
        acfg.sipConfig.transportId = tid
        acfg.regConfig.registerOnAdd = False
        acfg.regConfig.disableRegOnModify = True
        mtc = acfg.mediaConfig.transportConfig
        mtc.port = self.rtp_port
        mtc.portRange = self.rtp_port_count
        mtc.boundAddress = self.bind
        mtc.publicAddress = self.bind
        # No automatic re-INVITE/UPDATE after answer: the trace stays what the scenario did,
        # and a pending hold/retrieve only ever sees its own re-INVITE.
        acfg.mediaConfig.lockCodecEnabled = False
        acc = AgentAccount(self)
        acc.create(acfg, True)
        self.acc = acc
        self.acc_uri = id_uri
        self.acc_cfg = acfg
        if registrar and args.get("register", True):
            return self.start_registration(req_id, "configure", args, {"uri": uri},
                                           strict=True)
        return {"uri": uri}

    def ensure_transport(self, kind: str, tls: Any) -> int:
        """The agent's transport of ``kind``, created once (TCP on the SIP port, TLS on
        the SIP port + 1, both on the bind address)."""
        assert self.ep is not None and self.sip_port is not None
        settings = tls_settings(tls) if kind == "TLS" else None
        if kind in self.transports:
            if kind == "TLS" and settings != self.tls_settings:
                raise OpError("this agent's TLS transport was created with other TLS settings "
                              "(one TLS transport per agent); use a fresh agent")
            return self.transports[kind]
        port = self.sip_port + TRANSPORT_PORT_OFFSET[kind]
        tcfg = pj.TransportConfig()
        tcfg.port = port
        tcfg.boundAddress = self.bind
        tcfg.publicAddress = self.bind
        if settings is not None:
            t = tcfg.tlsConfig
            t.CaListFile = settings["ca_file"]
            t.certFile = settings["cert_file"]
            t.privKeyFile = settings["key_file"]
            t.password = settings["key_password"]
            t.verifyServer = settings["verify_server"]
            t.verifyClient = settings["verify_client"]
            t.requireClientCert = settings["verify_client"]
        try:
            tid = self.ep.transportCreate(TRANSPORT_TYPES[kind], tcfg)
        except pj.Error as exc:
            raise OpError(f"cannot listen on {kind} {self.bind}:{port}: {pj_error_text(exc)}")
        self.transports[kind] = tid
        self.local_addr[kind] = f"{self.bind}:{port}"
        if kind == "TLS":
            self.tls_settings = settings
        return tid

    # ----------------------------------------------------------------- registration

    def start_registration(self, req_id: Any, op: str, args: dict[str, Any],
                           result: dict[str, Any] | None = None, strict: bool = False
                           ) -> _Deferred:
        """Send REGISTER and reply when its final response arrives (or ``timeout``).

        ``strict`` (configure): anything but a 2xx is an error. Otherwise (``register``)
        every final response of the server is a result with its code, so a test can
        expect a 401/403; only a local failure (no response, TLS, transport) is an error.
        """
        acc = self.require_registrar()
        timeout = float(args.get("timeout") or DEFAULT_REG_TIMEOUT_S)
        try:
            pending = self.pending.add(req_id, op, "register", "account", timeout,
                                       f"response from {self.registrar}",
                                       result=dict(result or {}), strict=strict,
                                       timeout_error=f"no response from {self.registrar} "
                                                     f"within {timeout:g} s")
        except ValueError as exc:
            raise OpError(str(exc)) from None
        try:
            headers = args.get("headers")
            if op == "register" and headers is not None and self.acc_cfg is not None:
                self.acc_cfg.regConfig.headers = sip_headers(headers)
                acc.modify(self.acc_cfg)
            acc.setRegistration(True)
        except BaseException:
            self.pending.remove(pending)
            raise
        return DEFERRED

    def require_registrar(self) -> AgentAccount:
        acc = self.require_account()
        if not self.registrar:
            raise OpError("no registrar configured (configure with 'registrar' first)")
        return acc

    def op_register(self, req_id: Any, args: dict[str, Any]) -> Any:
        return self.start_registration(req_id, "register", args)

    def op_unregister(self, req_id: Any, args: dict[str, Any]) -> Any:
        acc = self.require_registrar()
        timeout = float(args.get("timeout") or DEFAULT_REG_TIMEOUT_S)
        try:
            pending = self.pending.add(req_id, "unregister", "unregister", "account", timeout,
                                       f"response from {self.registrar}",
                                       timeout_error=f"no response from {self.registrar} "
                                                     f"within {timeout:g} s")
        except ValueError as exc:
            raise OpError(str(exc)) from None
        try:
            acc.setRegistration(False)
        except BaseException:
            self.pending.remove(pending)
            raise
        return DEFERRED

    def on_reg_state(self, prm: "pj.OnRegStateParam") -> None:
        code, reason = int(prm.code), readable(prm.reason)
        expires = int(prm.expiration)
        error = None if prm.status == 0 else self.status_text(prm.status)
        registered = False
        if self.acc is not None:
            try:
                registered = bool(self.acc.getInfo().regIsActive)
            except pj.Error:
                pass
        fields: dict[str, Any] = {"code": code, "reason": reason, "expires": expires,
                                  "registered": registered}
        if error:
            fields["error"] = error
        self.emit("reg_state", **fields)
        outcome = {"code": code, "reason": reason, "expires": expires, "registered": registered}
        try:
            answered = bool(prm.rdata.wholeMsg)  # a response of the server, not a local failure
        except Exception:
            answered = False
        where = self.registrar
        detail = f" ({error})" if error else ""
        for pending in self.pending.take("account", "register"):
            if not answered:
                self.reply(pending.req_id, False, error=f"{pending.op}: REGISTER to {where} "
                                                        f"failed: {code} {reason}{detail}")
            elif pending.data.get("strict") and not 200 <= code < 300:
                self.reply(pending.req_id, False, error=f"{pending.op}: registration to "
                                                        f"{where} refused: {code} {reason}{detail}")
            else:
                self.reply(pending.req_id, True, {**pending.data.get("result", {}), **outcome})
        for pending in self.pending.take("account", "unregister"):
            if pending.req_id is None:  # reset's own, waited for in unregister_bounded
                pending.data["outcome"] = {"error": error} if error else outcome
            elif error is not None:
                self.reply(pending.req_id, False, error=f"unregister: {where}: {code} {reason} "
                                                        f"({error})")
            else:
                self.reply(pending.req_id, True, outcome)

    def status_text(self, status: int) -> str:
        assert self.ep is not None
        try:
            return readable(self.ep.utilStrError(status))
        except Exception:
            return f"status {status}"

    def unregister_bounded(self, timeout: float) -> dict[str, Any]:
        """For reset: un-REGISTER if registered, waiting at most ``timeout``."""
        acc = self.acc
        if acc is None or not self.registrar:
            return {}
        try:
            if not acc.getInfo().regIsActive:
                return {}
            pending = self.pending.add(None, "reset", "unregister", "account", timeout,
                                       f"response from {self.registrar}")
            acc.setRegistration(False)
        except (pj.Error, ValueError) as exc:
            return {"unregister": {"error": str(exc)}}
        deadline = time.monotonic() + timeout
        outcome: dict[str, Any] = {"error": f"no response from {self.registrar} within {timeout}s"}
        while time.monotonic() < deadline and "outcome" not in pending.data:
            self.pump(20)
        self.pending.remove(pending)
        return {"unregister": pending.data.get("outcome", outcome)}

    # ----------------------------------------------------------------- MESSAGE

    def op_send_message(self, req_id: Any, args: dict[str, Any]) -> Any:
        acc = self.require_account()
        target = self.verify_uri(args)
        body = str(args.get("body") or "")
        ctype = str(args.get("content_type") or "text/plain")
        buddy = self.buddies.get(target)
        if buddy is None:
            bcfg = pj.BuddyConfig()
            bcfg.uri = target
            bcfg.subscribe = False
            buddy = pj.Buddy()
            buddy.create(acc, bcfg)
            self.buddies[target] = buddy
        prm = pj.SendInstantMessageParam()
        prm.content = body
        prm.contentType = ctype
        for hdr in sip_headers(args.get("headers")):
            prm.txOption.headers.append(hdr)
        n = self.next_message
        self.next_message += 1
        key = f"message:{target}"
        try:
            pending = self.pending.add(req_id, "send_message", "message", key,
                                       float(args.get("timeout") or 10.0),
                                       "final response to the MESSAGE", n=n)
        except ValueError as exc:
            raise OpError(str(exc)) from None
        try:
            buddy.sendInstantMessage(prm)
        except BaseException:
            self.pending.remove(pending)
            raise
        return DEFERRED

    def on_message_status(self, prm: "pj.OnInstantMessageStatusParam") -> None:
        to = readable(prm.toUri).strip().lstrip("<").rstrip(">")
        code, reason = int(prm.code), readable(prm.reason)
        taken = self.pending.take(f"message:{to}", "message")
        if not taken:  # pjsua may spell the URI differently: oldest MESSAGE first
            taken = sorted(self.pending.take(None, "message"), key=lambda p: p.data["n"])[:1]
        for pending in taken:
            if 200 <= code < 300:
                self.reply(pending.req_id, True, {"code": code, "reason": reason})
            else:
                self.reply(pending.req_id, False,
                           error=f"send_message: MESSAGE answered {code} {reason}")

    def on_message(self, prm: "pj.OnInstantMessageParam") -> None:
        try:
            msg = parse(prm.rdata.wholeMsg)
            headers, cid = msg.headers.as_dict(), msg.call_id
        except Exception:
            headers, cid = {}, None
        self.emit("message", **{"from": prm.fromUri, "to": prm.toUri}, body=prm.msgBody,
                  content_type=prm.contentType, headers=headers, sip_call_id=cid)

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

    def wait_socket_budget(self, timeout: float = 2.0) -> None:
        """Poll until a new call's sockets fit in the ioqueue (see book.IOQUEUE_HANDLES)."""
        deadline = time.monotonic() + timeout
        while not self.budget.fits(len(self.calls)):
            if time.monotonic() > deadline:
                raise OpError("too many calls set up in the last 0.65s: "
                              "pjsip's socket table is full; retry later")
            self.pump(10)

    def op_make_call(self, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
        acc = self.require_account()
        target = self.verify_uri(args)
        headers = args.get("headers") or {}
        if not isinstance(headers, dict):
            raise OpError("'headers' must be an object")
        self.wait_socket_budget()
        handle = self.calls.new_handle()
        call = AgentCall(self, acc, handle)
        prm = pj.CallOpParam(True)
        for name, value in headers.items():
            hdr = pj.SipHeader()
            hdr.hName = str(name)
            hdr.hValue = str(value)
            prm.txOption.headers.append(hdr)
        self.calls.add(handle, call)
        self.media_clock(True)
        try:
            call.makeCall(target, prm)
        except pj.Error:
            if self.calls.discard(handle) is not None:
                # media may have been created and closed: count its sockets as closing
                self.budget.released()
            raise
        cid = None if call.gone else self.note_callid(call)
        if cid is None:  # ended inside makeCall: its Call-ID was noted by onCallState
            cid = self.calls.callid_of(handle)
        return {"call": handle, "sip_call_id": cid}

    def op_answer(self, req_id: Any, args: dict[str, Any]) -> None:
        call = self.get_call(args)
        self.answer(call, int(args.get("code") or 200), args.get("reason"), args.get("headers"))

    def answer(self, call: AgentCall, code: int, reason: Any = None,
               headers: Any = None) -> None:
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

    def op_respond(self, req_id: Any, args: dict[str, Any]) -> None:
        code = int(args["code"])
        if not 100 <= code <= 699:
            raise OpError(f"status code {code} not in 100-699")
        self.answer(self.get_call(args), code, args.get("reason"), args.get("headers"))

    def op_hangup(self, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
        handle = args.get("call")
        if isinstance(handle, str) and handle in self.calls.ended and handle not in self.calls:
            return {"already_ended": True}
        call = self.get_call(args)
        prm = call_param(args.get("headers"))
        if args.get("code"):
            prm.statusCode = int(args["code"])
        if args.get("reason"):
            prm.reason = str(args["reason"])
        call.hangup(prm)
        return {"already_ended": False}

    def defer(self, key: str, req_id: Any, op: str, kind: str, what: str,
              args: dict[str, Any], send: Callable[[], None]) -> _Deferred:
        """Run ``send`` and reply when the SIP outcome of ``kind`` on ``key`` arrives."""
        try:
            pending = self.pending.add(req_id, op, kind, key, float(args.get("timeout", 10.0)),
                                       what)
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

    def op_hold(self, req_id: Any, args: dict[str, Any]) -> Any:
        call = self.get_call(args)
        self.require_confirmed(call)
        prm = call_param(args.get("headers"))
        return self.defer(call.handle, req_id, "hold", "reinvite",
                          "final response to the re-INVITE", args, lambda: call.setHold(prm))

    def op_retrieve(self, req_id: Any, args: dict[str, Any]) -> Any:
        call = self.get_call(args)
        self.require_confirmed(call)
        prm = call_param(args.get("headers"))
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        return self.defer(call.handle, req_id, "retrieve", "reinvite",
                          "final response to the re-INVITE", args, lambda: call.reinvite(prm))

    def op_transfer(self, req_id: Any, args: dict[str, Any]) -> Any:
        call = self.get_call(args)
        self.require_confirmed(call)
        target = self.verify_uri(args)
        prm = call_param(args.get("headers"))
        return self.defer(call.handle, req_id, "transfer", "refer", "response to the REFER",
                          args, lambda: call.xfer(target, prm))

    def op_transfer_attended(self, req_id: Any, args: dict[str, Any]) -> Any:
        call = self.get_call(args)
        dest = self.get_call(args, "dest_call")
        if dest is call:
            raise OpError("call and dest_call are the same call")
        self.require_confirmed(call)
        self.require_confirmed(dest)
        prm = call_param(args.get("headers"))
        return self.defer(call.handle, req_id, "transfer_attended", "refer",
                          "response to the REFER", args, lambda: call.xferReplaces(dest, prm))

    def op_dtmf(self, req_id: Any, args: dict[str, Any]) -> Any:
        call = self.get_call(args)
        self.require_confirmed(call)
        digits = str(args.get("digits") or "").upper()
        if not digits:
            raise OpError("no digits")
        bad = sorted(set(digits) - set(DTMF_DIGITS))
        if bad:
            raise OpError(f"invalid DTMF digit(s) {''.join(bad)!r} (allowed 0-9 * # A-D)")
        method = str(args.get("method") or "rfc2833").lower()
        if method not in ("rfc2833", "info"):
            raise OpError(f"unknown DTMF method {method!r} (rfc2833 or info)")
        interval = int(args.get("interval_ms", 100))
        if interval < 0:
            raise OpError("interval_ms must be >= 0")
        headers = args.get("headers") or {}
        sip_headers(headers)  # refuses a non-object before any digit goes out
        if headers and method != "info":
            raise OpError("headers need method 'info' (RFC 2833 digits are RTP, not SIP)")
        job = DtmfJob(req_id, call.handle, digits, method, interval, headers=headers)
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
        for pending in self.pending.take():
            self.reply(pending.req_id, False, error=f"{pending.op}: cancelled by reset")
        left = self.hangup_all(timeout)
        for play_id in list(self.players):
            self.bury(self.players.pop(play_id))
        if left:
            raise OpError(f"{len(left)} call(s) did not end in {timeout}s: {', '.join(left)}; "
                          "discard this agent")
        result = self.unregister_bounded(min(timeout, float(args.get("unregister_timeout", 2.0))))
        self.drop_account()
        if self.ep is not None and self.transport_id is not None:
            self.apply_codecs(None)
        self.calls.prune_callids()
        gc.collect()
        return result

    def hangup_all(self, timeout: float) -> list[str]:
        """Hang up every call and poll until they are gone (bounded). Returns leftovers."""
        assert self.ep is not None
        for handle, call in list(self.calls.live.items()):
            if call.getId() < 0:
                self.forget_call(call, 0, "dropped before set-up")
                continue
            try:
                call.hangup(pj.CallOpParam(True))
            except pj.Error as exc:
                log(f"hangup {handle}: {pj_error_text(exc)}")
        deadline = time.monotonic() + timeout
        forced = False
        while self.calls.live and time.monotonic() < deadline:
            self.pump(10)
            if not forced and time.monotonic() > deadline - timeout / 2:
                forced = True
                self.ep.hangupAllCalls()
        return sorted(self.calls.live)

    def drop_account(self) -> None:
        if self.acc is None:
            return
        # Buddies die first, on this thread: Account.shutdown() would delete their C++
        # objects under Python's feet.
        self.buddies.clear()
        gc.collect()
        for pending in self.pending.take(None, "message"):
            self.reply(pending.req_id, False, error="send_message: cancelled by reset")
        try:
            self.acc.shutdown()
        except pj.Error as exc:
            log(f"account shutdown: {pj_error_text(exc)}")
        self.acc = None
        self.acc_uri = None
        self.acc_cfg = None
        self.registrar = None

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

    def housekeeping(self) -> None:
        """After each poll: posted facts, due DTMF digits and deadlines, media clock."""
        for kind, data in self.ch.take_posted():
            if kind == "eof":
                player = self.players.pop(data, None)
                if player is not None:
                    self.emit("play_done", call=player.handle, path=player.path)
                    self.bury(player, eof_seen=True)
        for job in list(self.dtmf_jobs):
            due = job.due()
            if due == "reply":
                self.dtmf_jobs.remove(job)
                self.reply(job.req_id, True, {"sent": job.digits})
            elif due == "send":
                self.step_dtmf(job)
        for pending in self.pending.expired():
            if pending.req_id is None:
                continue  # reset's own wait (unregister_bounded) reports it
            error = pending.data.get("timeout_error") or f"no {pending.what} on {pending.key} in time"
            self.reply(pending.req_id, False, error=f"{pending.op}: {error}")
        now = time.monotonic()
        for call in list(self.calls.live.values()):
            if call.child_of is not None and call.getId() < 0 and now - call.born > CHILD_GRACE_S:
                self.forget_call(call, 500, f"call for transfer/replace on {call.child_of} "
                                            "was never created")
        if self.graveyard:
            # Destroyed here, on the main thread, outside any callback.
            self.graveyard = [(t, obj) for t, obj in self.graveyard if t > now]
        if self.calls.live or self.players:
            self.idle_since = None
        elif self.idle_since is None:
            self.idle_since = now
        elif self.clock_on and now - self.idle_since >= CLOCK_IDLE_S:
            self.media_clock(False)
        if self.dirty and now - self.last_gc > 10.0:
            self.last_gc = now
            self.dirty = False
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
        digit = job.next_digit
        try:
            if job.headers:  # pjsua's INFO cannot carry headers: send the same INFO ourselves
                req = pj.CallSendRequestParam()
                req.method = "INFO"
                req.txOption.contentType = DTMF_INFO_TYPE
                req.txOption.msgBody = f"Signal={digit}\r\nDuration={job.duration}\r\n"
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
            self.dtmf_jobs.remove(job)
            self.reply(job.req_id, False, error=f"dtmf: digit {job.index + 1} ({digit}): "
                                                f"{pj_error_text(exc)}")
            return
        if job.sent():
            self.dtmf_jobs.remove(job)
            self.reply(job.req_id, True, {"sent": job.digits})

    # ----------------------------------------------------------------- SIP trace

    def on_log(self, level: int, msg: str) -> None:
        """One pjsua log entry. ``msg`` may carry surrogate escapes (peer bytes)."""
        if (msg.startswith("TX ") or msg.startswith("RX ")) and "--end msg--" in msg:
            self.on_sip_log(msg)
            return
        if msg.startswith("Dropped packet:") and msg.rstrip().endswith("-- end of packet."):
            body = msg[len("Dropped packet:"):].rstrip()[: -len("-- end of packet.")]
            transport, remote, error = self._dropping or ("UDP", None, "unparseable")
            self._dropping = None
            self.emit_sip("rx", transport, remote, raw_of(body.removesuffix("\n")),
                          malformed=True, error=readable(error))
            return
        m = _DROPPING_RE.match(msg)
        if m:
            self._dropping = (m.group(2), f"{m.group(3)}:{m.group(4)}",
                              m.group(5).strip().lstrip(": ").strip())
            return
        m = _ERROR_PKT_RE.match(msg)
        if m:
            self.emit_sip("rx", "UDP" if "UDP" in self.local_addr else next(
                iter(self.local_addr), "UDP"), f"{m.group(1)}:{m.group(2)}",
                raw_of(m.group(4)), malformed=True, error=readable(m.group(3)))
            return
        if level <= 2:
            # Level 3 is mostly call dumps: they would push the useful lines (and a C
            # assert message) out of the parent's short stderr tail.
            log("pj: " + msg.rstrip())

    def on_sip_log(self, msg: str) -> None:
        first, _, rest = msg.partition("\n")
        text = rest.rsplit("--end msg--", 1)[0]
        if text.endswith("\n"):
            text = text[:-1]
        m = _LOG_HEAD_RE.match(first.strip())
        direction = "tx" if first.startswith("TX") else "rx"
        transport, remote, size = (m.group(3), m.group(4), int(m.group(2))) if m \
            else ("UDP", None, None)
        raw = raw_of(text)
        self.emit_sip(direction, transport, remote, raw,
                      truncated=size is not None and len(raw) < size)

    def emit_sip(self, direction: str, transport: str, remote: str | None, raw: bytes,
                 malformed: bool = False, truncated: bool = False,
                 error: str | None = None) -> None:
        """The trace record of one SIP message (docs/agent-protocol.md, ``sip`` event)."""
        message = parse(raw)
        cid = message.call_id
        fields: dict[str, Any] = {
            "dir": direction,
            "transport": transport,
            "local": self.local_addr.get(transport),
            "remote": remote,
            "peer": f"{transport} {remote}" if remote else None,
            "wall": time.time(),
            "summary": message.start_line,
            "text": message.text,
            "raw": base64.b64encode(raw).decode("ascii"),
            "call": self.calls.handle_of(cid),
            "sip_call_id": cid,
            "malformed": malformed,
            "truncated": truncated,
        }
        if error is not None:
            fields["error"] = error
        if cid is not None:
            fields["_callid"] = cid
        self.emit("sip", **fields)

    # ----------------------------------------------------------------- callbacks

    def on_incoming(self, prm: "pj.OnIncomingCallParam") -> None:
        assert self.acc is not None
        handle = self.calls.new_handle()
        call = AgentCall(self, self.acc, handle, prm.callId)
        self.calls.add(handle, call)
        self.media_clock(True)
        ci = call.getInfo()
        cid = readable(ci.callIdString)
        self.calls.note_callid(cid, handle)
        try:
            headers = parse(prm.rdata.wholeMsg).headers.as_dict()
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
                  headers=headers, sip_call_id=cid)

    def on_call_state(self, call: AgentCall) -> None:
        if call.gone:
            return
        ci = call.getInfo()
        self.calls.note_callid(readable(ci.callIdString), call.handle)
        st = ci.state
        if st == pj.PJSIP_INV_STATE_CONFIRMED:
            if not call.confirmed:
                call.confirmed = True
                self.emit("confirmed", call=call.handle, **self.audio_codec(call, ci))
        elif st == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.forget_call(call, ci.lastStatusCode, ci.lastReason)

    def audio_codec(self, call: AgentCall, ci: "pj.CallInfo") -> dict[str, Any]:
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

    def forget_call(self, call: AgentCall, code: int, reason: str) -> None:
        """Drop the call from the registry. Called inside its DISCONNECTED callback, so
        the Python object (and its C++ Call) dies when the callback returns, before
        pjsua can recycle its id."""
        if call.gone:
            return
        call.gone = True
        self.calls.end(call.handle)
        self.budget.released()
        self.resolve(call.handle, None, False, error=f"call {call.handle} ended ({code} {reason})")
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

    def make_child(self, parent: AgentCall, call_id: int = pj.PJSUA_INVALID_ID) -> AgentCall:
        assert self.acc is not None
        child = AgentCall(self, self.acc, self.calls.new_handle(), call_id)
        child.child_of = parent.handle
        self.calls.add(child.handle, child)
        self.media_clock(True)
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
        prm.newCall = self.make_child(call)

    def on_replaced(self, call: AgentCall, prm: "pj.OnCallReplacedParam") -> None:
        new_id = prm.newCallId
        child = next((c for c in self.calls.live.values()
                      if c.child_of == call.handle and c.getId() == new_id), None)
        if child is None:
            child = self.make_child(call, new_id)
            prm.newCall = child
        self.note_callid(child)
        self.emit("replaced", call=call.handle, new_call=child.handle)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pytest_sipflow.agent")
    parser.add_argument("--fd", type=int, required=True, help="inherited socket fd (socketpair end)")
    parser.add_argument("--name", default="agent")
    ns = parser.parse_args(argv)
    set_name(ns.name)
    # Automatic GC could run a SWIG destructor on the reader thread (unregistered with
    # pjlib → assert → abort). The main loop collects explicitly instead.
    gc.disable()
    agent = AgentEndpoint(socket.socket(fileno=ns.fd), ns.name)
    try:
        agent.init_endpoint()
    except Exception:
        log("endpoint init failed:\n" + traceback.format_exc())
        hard_exit(2)
    # What exists now (modules, the Endpoint) lives as long as the process: keep it out of
    # every later collection, so the explicit collects after calls cost microseconds.
    gc.freeze()
    agent.ch.start_reader()
    agent.emit("ready", pid=os.getpid(),
               pjsua2=agent.ep.libVersion().full if agent.ep else None)
    agent.flush()
    try:
        agent.run()
    except Exception:
        log("main loop crashed:\n" + traceback.format_exc())
        hard_exit(1)
    hard_exit(0)
    return 0
