"""The agent's SIP transports: UDP from ``start``, TCP and TLS created on first use.

All listen on the bind address: UDP and TCP on the agent's SIP port, TLS on the next
port (one TLS transport per agent, with the TLS settings of its first ``configure``).
"""

from __future__ import annotations

from typing import Any

import pjsua2 as pj

from ...sip import LOOPBACK
from ...sip.message import readable
from ..rules import OpError, tls_settings
from .ops import op
from .state import AgentState, pj_error_text

#: Transports an account can use; UDP is created by ``start``, TCP/TLS on first use.
TRANSPORT_TYPES = {"UDP": pj.PJSIP_TRANSPORT_UDP, "TCP": pj.PJSIP_TRANSPORT_TCP,
                   "TLS": pj.PJSIP_TRANSPORT_TLS}
#: The same on an IPv6 bind address (only where the wheel has IPv6; see agent.capabilities).
TRANSPORT_TYPES6 = {"UDP": pj.PJSIP_TRANSPORT_UDP6, "TCP": pj.PJSIP_TRANSPORT_TCP6,
                    "TLS": pj.PJSIP_TRANSPORT_TLS6}
#: Listener port of each transport, relative to the agent's UDP SIP port.
TRANSPORT_PORT_OFFSET = {"UDP": 0, "TCP": 0, "TLS": 1}


@op("start", needs_start=False)
def start(st: AgentState, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
    """The UDP transport on the first free port of ``sip_port``..``sip_port_last``
    (step 2: the odd port above each is left for TLS)."""
    if st.transport_id is not None:
        raise OpError(f"already started on port {st.sip_port}")
    first = int(args["sip_port"])
    last = int(args.get("sip_port_last", first + 20))
    st.rtp_port = int(args.get("rtp_port", 4000))
    st.rtp_port_count = int(args.get("rtp_port_count", 100))
    st.bind = str(args.get("bind_address") or LOOPBACK)
    if not (0 < first <= last < 65536):
        raise OpError(f"bad SIP port range {first}-{last}")
    assert st.ep is not None
    errors: list[str] = []
    for port in range(first, last + 1, 2):
        tcfg = pj.TransportConfig()
        tcfg.port = port
        tcfg.boundAddress = st.bind
        tcfg.publicAddress = st.bind
        try:
            st.transport_id = st.ep.transportCreate(transport_type(st, "UDP"), tcfg)
        except pj.Error as exc:
            errors.append(f"{port}: {readable(exc.reason)}")
            continue
        st.sip_port = port
        st.transports["UDP"] = st.transport_id
        st.local_addr["UDP"] = f"{bind_host(st)}:{port}"
        return {"sip_port": port}
    raise OpError(f"no free UDP port on {st.bind} in {first}-{last} (step 2); "
                  f"last error {errors[-1] if errors else '-'}")


def is_ipv6(st: AgentState) -> bool:
    return ":" in st.bind


def bind_host(st: AgentState) -> str:
    """The bind address as a URI host: ``[::1]`` for IPv6."""
    return f"[{st.bind}]" if is_ipv6(st) else st.bind


def transport_type(st: AgentState, kind: str) -> int:
    return (TRANSPORT_TYPES6 if is_ipv6(st) else TRANSPORT_TYPES)[kind]


def ensure_transport(st: AgentState, kind: str, tls: Any) -> int:
    """The agent's transport of ``kind``, created once (TCP on the SIP port, TLS on
    the SIP port + 1, both on the bind address)."""
    assert st.ep is not None and st.sip_port is not None
    settings = tls_settings(tls) if kind == "TLS" else None
    if kind in st.transports:
        if kind == "TLS" and settings != st.tls_settings:
            raise OpError("this agent's TLS transport was created with other TLS settings "
                          "(one TLS transport per agent); use a fresh agent")
        return st.transports[kind]
    port = st.sip_port + TRANSPORT_PORT_OFFSET[kind]
    tcfg = pj.TransportConfig()
    tcfg.port = port
    tcfg.boundAddress = st.bind
    tcfg.publicAddress = st.bind
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
        tid = st.ep.transportCreate(transport_type(st, kind), tcfg)
    except pj.Error as exc:
        raise OpError(f"cannot listen on {kind} {st.bind}:{port}: {pj_error_text(exc)}")
    st.transports[kind] = tid
    st.local_addr[kind] = f"{bind_host(st)}:{port}"
    if kind == "TLS":
        st.tls_settings = settings
    return tid


def wake_transport(st: AgentState) -> None:
    """The wake-up transport (see ``loop``): loopback, ephemeral port, no account uses it."""
    assert st.ep is not None
    tcfg = pj.TransportConfig()
    tcfg.port = 0
    tcfg.boundAddress = LOOPBACK
    st.wake_transport = st.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
    info = st.ep.transportGetInfo(st.wake_transport)
    st.ch.wake_address = (LOOPBACK, int(info.localName.rsplit(":", 1)[1]))
