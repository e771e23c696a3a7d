"""Media options of the account: statistics on/off, SRTP (SDES or DTLS keying), and the
test-only SDP fault (advertise another RTP port than the one the agent listens on).

SDES keys travel in the SDP, so they are only as secret as the signalling: over TLS the
agent requires a secure transport (``srtpSecureSignaling = 1``), over UDP/TCP it allows
plain signalling (local tests, the test Kamailio); docs/media.md says so.
"""

from __future__ import annotations

from typing import Any

import pjsua2 as pj

from ...sip.message import sdp_with_audio_port
from ..rules import OpError
from .objects import AgentCall
from .ops import callback, op
from .state import AgentState

SRTP_USE = {"disabled": pj.PJMEDIA_SRTP_DISABLED, "optional": pj.PJMEDIA_SRTP_OPTIONAL,
            "mandatory": pj.PJMEDIA_SRTP_MANDATORY}
SRTP_KEYING = {"sdes": pj.PJMEDIA_SRTP_KEYING_SDES, "dtls": pj.PJMEDIA_SRTP_KEYING_DTLS_SRTP}


def configure_media(st: AgentState, acfg: "pj.AccountConfig", args: dict[str, Any],
                    transport: str) -> None:
    """``media_stats``, ``srtp`` and ``srtp_keying`` of ``configure`` onto the account."""
    st.media_watch = bool(args.get("media_stats", False))
    use = str(args.get("srtp") or "disabled").lower()
    keying = str(args.get("srtp_keying") or "sdes").lower()
    if use not in SRTP_USE:
        raise OpError(f"unknown srtp {use!r} ({', '.join(SRTP_USE)})")
    if keying not in SRTP_KEYING:
        raise OpError(f"unknown srtp_keying {keying!r} ({', '.join(SRTP_KEYING)})")
    med = acfg.mediaConfig
    med.srtpUse = SRTP_USE[use]
    if use != "disabled":
        med.srtpSecureSignaling = 1 if transport == "TLS" else 0
        keyings = pj.IntVector()
        keyings.append(SRTP_KEYING[keying])
        med.srtpOpt.keyings = keyings


@op("debug_sdp_port")
def debug_sdp_port(st: AgentState, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Test hook: advertise ``port`` in every later SDP's m=audio (None: the real one)."""
    port = args.get("port")
    if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
        raise OpError("'port' must be a UDP port number or null")
    st.sdp_audio_port = port
    return {"port": port}


@callback("onCallSdpCreated")
def on_sdp_created(st: AgentState, call: AgentCall, prm: "pj.OnCallSdpCreatedParam") -> None:
    if st.sdp_audio_port is not None:
        prm.sdp.wholeSdp = sdp_with_audio_port(prm.sdp.wholeSdp, st.sdp_audio_port)
