"""The agent's one account: ``configure`` (local or real mode), codecs, registration.

Local mode: ``sip:dn@bind:port``, no server. Real mode (``registrar``): AOR
``sip:dn@domain``, digest credentials, REGISTER/un-REGISTER with their replies deferred
until the server's final response.
"""

from __future__ import annotations

import time
from typing import Any

import pjsua2 as pj

from ...sip import DEFAULT_CODECS
from ...sip.message import readable
from ..loop import log
from ..rules import (OpError, challenge_realms, codec_priorities, id_uri, register_outcome,
                     sip_uri, uri_host)
from .messages import drop_buddies
from .objects import AgentAccount
from .ops import Deferred, callback, op
from .srtp import configure_media
from .state import AgentState, pj_error_text, sip_headers
from .transports import (TRANSPORT_PORT_OFFSET, TRANSPORT_TYPES, bind_host, ensure_transport,
                         is_ipv6)

#: As the scenario format's sipInstance default (the library default would pick speex).
DEFAULT_REG_TIMEOUT_S = 10.0
DEFAULT_EXPIRES_S = 300


@op("configure")
def configure(st: AgentState, req_id: Any, args: dict[str, Any]) -> Any:
    """Create the account: local (``sip:dn@bind:port``) or, with ``registrar``, real
    mode (AOR ``sip:dn@domain``, digest credentials, optional registration)."""
    assert st.ep is not None and st.transport_id is not None and st.sip_port is not None
    if st.acc is not None:
        if st.calls.live:
            raise OpError("already configured and calls are up (send 'reset' first)")
        drop_account(st)
    dn = str(args.get("dn") or "")
    transport = str(args.get("transport") or "UDP").upper()
    if transport not in TRANSPORT_TYPES:
        raise OpError(f"unknown transport {transport!r} (UDP, TCP or TLS)")
    registrar = args.get("registrar")
    if registrar is not None and (not isinstance(registrar, str) or not registrar):
        raise OpError("'registrar' must be a host[:port] or a sip: URI")
    codecs = args.get("codecs") or list(DEFAULT_CODECS)
    st.auto_ringing = bool(args.get("auto_ringing", True))
    st.keep_trace = args.get("trace") == "keep"  # else each message is a ``sip`` event
    st.kept.clear()
    tid = ensure_transport(st, transport, args.get("tls"))
    apply_codecs(st, codecs)
    user = f"{dn}@" if dn else ""
    acfg = pj.AccountConfig()
    if registrar:
        reg_uri = sip_uri(registrar, transport)
        domain = str(args.get("domain") or uri_host(reg_uri))
        scheme = "sips" if reg_uri.startswith("sips:") else "sip"
        uri = f"{scheme}:{user}{domain}"
        acfg.regConfig.registrarUri = reg_uri
        acfg.regConfig.timeoutSec = int(args.get("expires") or DEFAULT_EXPIRES_S)
        acfg.regConfig.retryIntervalSec = 0  # a failure is reported, not retried
        acfg.regConfig.headers = sip_headers(args.get("headers"))
        st.registrar = reg_uri
    else:
        tparam = "" if transport == "UDP" else f";transport={transport.lower()}"
        uri = f"sip:{user}{bind_host(st)}:{st.sip_port + TRANSPORT_PORT_OFFSET[transport]}{tparam}"
        st.registrar = None
    proxy = args.get("outbound_proxy") or (f"{st.registrar};lr" if st.registrar else None)
    if proxy:
        acfg.sipConfig.proxies.append(sip_uri(str(proxy), transport))
    password = args.get("password")
    if password is not None or args.get("username"):
        cred = pj.AuthCredInfo("digest", str(args.get("realm") or "*"),
                               str(args.get("username") or dn), 0, str(password or ""))
        acfg.sipConfig.authCreds.append(cred)
    identity = id_uri(str(args.get("display") or ""), uri)
    acfg.idUri = identity
    acfg.sipConfig.transportId = tid
    acfg.regConfig.registerOnAdd = False
    acfg.regConfig.disableRegOnModify = True
    mtc = acfg.mediaConfig.transportConfig
    mtc.port = st.rtp_port
    mtc.portRange = st.rtp_port_count
    mtc.boundAddress = st.bind
    mtc.publicAddress = st.bind
    if is_ipv6(st):  # a wheel without IPv6 aborts here: items needing it are skipped before
        acfg.mediaConfig.ipv6Use = pj.PJSUA_IPV6_ENABLED_USE_IPV6_ONLY
    # No automatic re-INVITE/UPDATE after answer: the trace stays what the scenario did,
    # and a pending hold/retrieve only ever sees its own re-INVITE.
    acfg.mediaConfig.lockCodecEnabled = False
    configure_media(st, acfg, args, transport)
    acc = AgentAccount(st.fire)
    acc.create(acfg, True)
    st.acc = acc
    st.acc_uri = identity
    st.acc_cfg = acfg
    if registrar and args.get("register", True):
        return start_registration(st, req_id, "configure", args, {"uri": uri}, strict=True)
    return {"uri": uri}


def apply_codecs(st: AgentState, codecs: Any) -> None:
    """Codec priorities for a ``codecs`` list, or pjsua's defaults back (None)."""
    assert st.ep is not None
    if codecs is None:
        for cid, prio in st.default_codecs.items():
            st.ep.codecSetPriority(cid, prio)
        return
    for cid, prio in codec_priorities(st.default_codecs, codecs).items():
        st.ep.codecSetPriority(cid, prio)


def drop_account(st: AgentState) -> None:
    if st.acc is None:
        return
    drop_buddies(st)
    try:
        st.acc.shutdown()
    except pj.Error as exc:
        log(f"account shutdown: {pj_error_text(exc)}")
    st.acc = None
    st.acc_uri = None
    st.acc_cfg = None
    st.registrar = None


# --------------------------------------------------------------------------- registration


def require_registrar(st: AgentState) -> AgentAccount:
    acc = st.require_account()
    if not st.registrar:
        raise OpError("no registrar configured (configure with 'registrar' first)")
    return acc


def start_registration(st: AgentState, req_id: Any, op_name: str, args: dict[str, Any],
                       result: dict[str, Any] | None = None, strict: bool = False
                       ) -> Deferred:
    """Send REGISTER and reply when its final response arrives (or ``timeout``).

    ``strict`` (configure): anything but a 2xx is an error. Otherwise (``register``)
    every final response of the server is a result with its code, so a test can
    expect a 401/403; only a local failure (no response, TLS, transport) is an error.
    """
    acc = require_registrar(st)
    timeout = float(args.get("timeout") or DEFAULT_REG_TIMEOUT_S)

    def send() -> None:
        headers = args.get("headers")
        if op_name == "register" and headers is not None and st.acc_cfg is not None:
            st.acc_cfg.regConfig.headers = sip_headers(headers)
            acc.modify(st.acc_cfg)
        acc.setRegistration(True)
    return st.defer(send, req_id, op_name, "register", "account", timeout,
                    f"response from {st.registrar}", result=dict(result or {}), strict=strict,
                    timeout_error=f"no response from {st.registrar} within {timeout:g} s")


@op("register")
def register(st: AgentState, req_id: Any, args: dict[str, Any]) -> Any:
    return start_registration(st, req_id, "register", args)


@op("unregister")
def unregister(st: AgentState, req_id: Any, args: dict[str, Any]) -> Any:
    acc = require_registrar(st)
    timeout = float(args.get("timeout") or DEFAULT_REG_TIMEOUT_S)
    return st.defer(lambda: acc.setRegistration(False), req_id, "unregister", "unregister",
                    "account", timeout, f"response from {st.registrar}",
                    timeout_error=f"no response from {st.registrar} within {timeout:g} s")


@callback("onRegState")
def on_reg_state(st: AgentState, prm: "pj.OnRegStateParam") -> None:
    code, reason = int(prm.code), readable(prm.reason)
    expires = int(prm.expiration)
    error = None if prm.status == 0 else st.status_text(prm.status)
    registered = False
    if st.acc is not None:
        try:
            registered = bool(st.acc.getInfo().regIsActive)
        except pj.Error:
            pass
    outcome = {"code": code, "reason": reason, "expires": expires, "registered": registered}
    st.emit("reg_state", **outcome, **({"error": error} if error else {}))
    try:
        whole = str(prm.rdata.wholeMsg)
    except Exception:
        whole = ""
    answered = bool(whole)  # a response of the server, not a local failure
    realms = challenge_realms(whole) if code in (401, 407) else []
    where = st.registrar
    for pending in st.pending.take("account", "register"):
        out = register_outcome(pending.op, where, answered, bool(pending.data.get("strict")),
                               code, reason, error,
                               {**pending.data.get("result", {}), **outcome}, realms)
        st.reply(pending.req_id, out.ok, out.result, out.error)
    for pending in st.pending.take("account", "unregister"):
        if pending.req_id is None:  # reset's own, waited for in unregister_bounded
            pending.data["outcome"] = {"error": error} if error else outcome
        elif error is not None:
            st.reply(pending.req_id, False, error=f"unregister: {where}: {code} {reason} "
                                                  f"({error})")
        else:
            st.reply(pending.req_id, True, outcome)


def unregister_bounded(st: AgentState, timeout: float) -> dict[str, Any]:
    """For reset: un-REGISTER if registered, waiting at most ``timeout``."""
    acc = st.acc
    if acc is None or not st.registrar:
        return {}
    try:
        if not acc.getInfo().regIsActive:
            return {}
        pending = st.pending.add(None, "reset", "unregister", "account", timeout,
                                 f"response from {st.registrar}")
        acc.setRegistration(False)
    except (pj.Error, ValueError) as exc:
        return {"unregister": {"error": str(exc)}}
    deadline = time.monotonic() + timeout
    outcome: dict[str, Any] = {"error": f"no response from {st.registrar} within {timeout}s"}
    while time.monotonic() < deadline and "outcome" not in pending.data:
        st.pump(20)
    st.pending.remove(pending)
    return {"unregister": pending.data.get("outcome", outcome)}
