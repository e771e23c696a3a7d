"""What the installed pjsua2 wheel can do, found by trying: run as a throwaway process.

``python -m pytest_sipflow.agent.pj.probe`` prints one JSON line per check; IPv6 comes
last because a wheel built without it *aborts* on an IPv6 account (a C assert), and the
parent (``agent.capabilities``) reads that death as the verdict. Never run in an agent.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any

import pjsua2 as pj

#: Each self-call gets this long to be answered or refused.
CALL_WAIT_S = 3.0


def say(check: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"check": check, **fields}) + "\n")
    sys.stdout.flush()


def error_text(exc: Any) -> str:
    return str(getattr(exc, "reason", exc)).strip() or str(exc)


class _Call(pj.Call):
    def __init__(self, acc: "pj.Account", call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(acc, call_id)
        self.state = ""
        self.code = 0
        self.reason = ""

    def onCallState(self, prm: Any) -> None:
        try:
            info = self.getInfo()
            self.state, self.code = info.stateText, info.lastStatusCode
            self.reason = info.lastReason
        except Exception as exc:  # noqa: BLE001 - a callback must not raise into C
            self.reason = repr(exc)


class _Account(pj.Account):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[_Call] = []
        self.answer_error = ""

    def onIncomingCall(self, prm: Any) -> None:
        call = _Call(self, prm.callId)
        self.calls.append(call)
        op = pj.CallOpParam()
        op.statusCode = 200
        try:
            call.answer(op)
        except Exception as exc:  # noqa: BLE001
            self.answer_error = error_text(exc)
            op.statusCode = 488
            try:
                call.hangup(op)
            except Exception:  # noqa: BLE001
                pass


def endpoint() -> "pj.Endpoint":
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.uaConfig.threadCnt = 0
    cfg.uaConfig.mainThreadOnly = True
    cfg.logConfig.level = 1
    cfg.logConfig.consoleLevel = 1
    cfg.medConfig.hasIoqueue = False
    cfg.medConfig.threadCnt = 0
    ep.libInit(cfg)
    ep.audDevManager().setNoDev()
    ep.libStart()
    return ep


def transport(ep: "pj.Endpoint", kind: int, address: str) -> tuple[int, str]:
    tcfg = pj.TransportConfig()
    tcfg.port = 0
    tcfg.boundAddress = address
    tid = ep.transportCreate(kind, tcfg)
    return tid, ep.transportGetInfo(tid).localName


def self_call(ep: "pj.Endpoint", tid: int, local: str, user: str,
              media: Any = None) -> tuple[bool, str]:
    """An account calls itself over ``tid``: (answered, why not)."""
    cfg = pj.AccountConfig()
    cfg.idUri = f"sip:{user}@{local}"
    cfg.sipConfig.transportId = tid
    if media is not None:
        media(cfg.mediaConfig)
    acc = _Account()
    acc.create(cfg)
    call = _Call(acc)
    try:
        call.makeCall(f"sip:{user}@{local}", pj.CallOpParam(True))
    except pj.Error as exc:
        return False, error_text(exc)
    deadline = time.monotonic() + CALL_WAIT_S
    while time.monotonic() < deadline and call.state not in ("CONFIRMED", "DISCONNECTED"):
        ep.libHandleEvents(10)
    if call.state == "CONFIRMED":
        return True, ""
    why = acc.answer_error or f"{call.code} {call.reason}".strip() or "no answer"
    return False, why


def srtp(keying: int) -> Any:
    def apply(media: Any) -> None:
        media.srtpUse = pj.PJMEDIA_SRTP_MANDATORY
        media.srtpSecureSignaling = 0
        keyings = pj.IntVector()
        keyings.append(keying)
        media.srtpOpt.keyings = keyings
    return apply


def ipv6_media(media: Any) -> None:
    media.ipv6Use = pj.PJSUA_IPV6_ENABLED_PREFER_IPV6


def main() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # the expected abort writes no core
    ep = endpoint()
    say("codecs", value=[c.codecId for c in ep.codecEnum2()])
    try:
        ciphers = len(ep.utilSslGetAvailableCiphers())
        say("tls", ok=ciphers > 0, why="" if ciphers else "no TLS ciphers")
    except pj.Error as exc:
        say("tls", ok=False, why=error_text(exc))
    tid, local = transport(ep, pj.PJSIP_TRANSPORT_UDP, "127.0.0.1")
    for check, keying in (("srtp-sdes", pj.PJMEDIA_SRTP_KEYING_SDES),
                          ("dtls-srtp", pj.PJMEDIA_SRTP_KEYING_DTLS_SRTP)):
        ok, why = self_call(ep, tid, local, check.replace("-", ""), srtp(keying))
        say(check, ok=ok, why=why and f"a {check.upper()} call ends: {why}")
    say("ipv6-start")  # from here on, an abort is the wheel's answer
    try:
        tid6, local6 = transport(ep, pj.PJSIP_TRANSPORT_UDP6, "::1")
    except pj.Error as exc:
        say("ipv6", ok=False, why=f"no UDP6 transport on ::1: {error_text(exc)}")
        return
    ok, why = self_call(ep, tid6, local6, "ipv6", ipv6_media)
    say("ipv6", ok=ok, why=why)


if __name__ == "__main__":
    try:
        main()
    finally:
        os._exit(0)  # no libDestroy: its asserts on half-ended calls would muddy the verdict
