"""The thin pjsua2 subclasses: a little bookkeeping, and every callback forwarded.

Callbacks run on the main thread and their handlers (``ops.CALLBACKS``, through the
state's ``fire``) do pjsua2 work directly: auto 180, child calls for REFER/Replaces, call
info, deferred replies, events. An exception becomes an ``internal_error`` event, not a
SWIG print. Only a player's EOF comes from another thread (pjmedia's): it is posted.
"""

from __future__ import annotations

import time
import traceback
from typing import Any, Callable

import pjsua2 as pj

from ..loop import log

Fire = Callable[..., None]


class AgentLogWriter(pj.LogWriter):
    """pjsua's log: message logs (level 4) become ``sip`` events, errors go to stderr."""

    def __init__(self, on_log: Callable[[int, str], None]) -> None:
        super().__init__()
        self.on_log = on_log

    def write(self, entry: "pj.LogEntry") -> None:
        try:
            self.on_log(entry.level, entry.msg)
        except Exception:
            log("log writer failed:\n" + traceback.format_exc())


class AgentAccount(pj.Account):
    def __init__(self, fire: Fire) -> None:
        super().__init__()
        self.fire = fire

    def onIncomingCall(self, prm: "pj.OnIncomingCallParam") -> None:
        self.fire("onIncomingCall", prm)

    def onRegState(self, prm: "pj.OnRegStateParam") -> None:
        self.fire("onRegState", prm)

    def onInstantMessage(self, prm: "pj.OnInstantMessageParam") -> None:
        self.fire("onInstantMessage", prm)

    def onInstantMessageStatus(self, prm: "pj.OnInstantMessageStatusParam") -> None:
        self.fire("onInstantMessageStatus", prm)


class AgentCall(pj.Call):
    """A call leg: its handle and what the rooms note about it."""

    def __init__(self, fire: Fire, acc: AgentAccount, handle: str,
                 call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(acc, call_id)
        self.fire = fire
        self.handle = handle
        self.remote_held = False
        self.confirmed = False
        self.gone = False
        self.born = time.monotonic()
        #: set for calls created for a REFER / Replaces before pjsua gives them an id
        self.child_of: str | None = None
        #: media statistics of this call are watched (``media.MediaWatch``), or None
        self.watch: Any = None
        #: the SDES suite of the last SDP answer (``a=crypto``), when media is watched
        self.crypto: str | None = None
        self.follow_redirects = True   # a 3xx to our INVITE: call its Contact
        self.cancelled = False         # the peer's CANCEL ended it before an answer

    def onCallRedirected(self, prm: "pj.OnCallRedirectedParam") -> int:
        # Must answer here and now (pjsua waits for the value): no handler to forward to.
        follow = self.follow_redirects
        log(f"{self.handle}: redirected to {prm.targetUri}: "
            + ("following" if follow else "not following (followRedirects false)"))
        # REJECT, not STOP: with no other target the call ends with the 3xx itself (STOP: 487).
        return pj.PJSIP_REDIRECT_ACCEPT if follow else pj.PJSIP_REDIRECT_REJECT

    def onCallState(self, prm: "pj.OnCallStateParam") -> None:
        self.fire("onCallState", self, prm)

    def onCallTsxState(self, prm: "pj.OnCallTsxStateParam") -> None:
        self.fire("onCallTsxState", self, prm)

    def onCallRxOffer(self, prm: "pj.OnCallRxOfferParam") -> None:
        self.fire("onCallRxOffer", self, prm)

    def onDtmfDigit(self, prm: "pj.OnDtmfDigitParam") -> None:
        self.fire("onDtmfDigit", self, prm)

    def onCallTransferRequest(self, prm: "pj.OnCallTransferRequestParam") -> None:
        self.fire("onCallTransferRequest", self, prm)

    def onCallTransferStatus(self, prm: "pj.OnCallTransferStatusParam") -> None:
        self.fire("onCallTransferStatus", self, prm)

    def onCallReplaceRequest(self, prm: "pj.OnCallReplaceRequestParam") -> None:
        self.fire("onCallReplaceRequest", self, prm)

    def onCallReplaced(self, prm: "pj.OnCallReplacedParam") -> None:
        self.fire("onCallReplaced", self, prm)

    def onCallMediaState(self, prm: "pj.OnCallMediaStateParam") -> None:
        self.fire("onCallMediaState", self, prm)

    def onStreamDestroyed(self, prm: "pj.OnStreamDestroyedParam") -> None:
        self.fire("onStreamDestroyed", self, prm)

    def onCallSdpCreated(self, prm: "pj.OnCallSdpCreatedParam") -> None:
        self.fire("onCallSdpCreated", self, prm)


class AgentPlayer(pj.AudioMediaPlayer):
    """WAV player; EOF arrives on pjmedia's event thread, so it is only posted."""

    def __init__(self, post: Callable[[str, Any], None], play_id: int, handle: str,
                 path: str) -> None:
        super().__init__()
        self.post = post
        self.play_id = play_id
        self.handle = handle
        self.path = path

    def onEof2(self) -> None:
        # Not the main thread: no pjsua2 call here, just hand the fact over (and wake).
        self.post("eof", self.play_id)
