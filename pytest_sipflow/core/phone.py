"""The call steps, implemented once: used by the engine's node handlers and by ``ua.py``.

A :class:`Phone` is one SIP instance seen from the pytest process: its agent (requests) and
its mailbox (events). Every step addresses a call by its dialog key, waits with a timeout,
and fails with :class:`StepFailed` (reason, expected, actual) — the engine turns that into
a failed node, the Python API into an ``AssertionError``. No pytest, no pjsua2 here.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from ..agent.client import AgentCrashed, AgentError
from ..sip.message import SipMessage
from .expect import Checks, assert_headers, codec_matches, final_reply, srtp_hint
from .expect import in_ms as _ms
from .failures import AgentDied, StepFailed
from .mailbox import Event, Mailbox
from .trace import DESCRIBES, completing_message, last_received

#: A step's own default when the caller gives no timeout (seconds).
REQUEST_TIMEOUT_S = 5.0
#: pjsua reports the REFER's own 2xx as a first "NOTIFY 100 Accepted"; no NOTIFY came yet.
_REFER_ACCEPTED = (100, "Accepted")


class ReplyLike(Protocol):
    def wait(self, timeout: float = 5.0) -> dict[str, Any]: ...


class AgentLike(Protocol):
    """What the pytest side needs of an agent (``agent.client.Agent`` or a test fake)."""

    name: str
    pid: int
    sip_port: int | None

    @property
    def alive(self) -> bool: ...
    def send(self, op: str, **args: Any) -> ReplyLike: ...
    def set_event_sink(self, sink: Callable[[dict[str, Any]], None] | None) -> None: ...
    def stderr_tail(self, n: int = 20) -> list[str]: ...


def _left(end: float) -> float:
    return max(0.0, end - time.monotonic())


def status_text(ev: Event) -> str:
    return f"{ev.raw.get('code')} {ev.raw.get('reason', '')}".strip()


def _with_headers(args: dict[str, Any], headers: Mapping[str, str] | None) -> dict[str, Any]:
    """``args`` plus ``headers`` for the agent, only when there are some."""
    if headers:
        args["headers"] = dict(headers)
    return args


class Phone:
    """One instance's agent and mailbox, and every call step on them."""

    def __init__(self, name: str, agent: AgentLike, box: Mailbox,
                 request_timeout: float = REQUEST_TIMEOUT_S) -> None:
        self.name = name
        self.agent = agent
        self.box = box
        self.request_timeout = request_timeout
        #: call handle -> the last media statistics seen (``core.media``), for the reports
        self.media: dict[str, Any] = {}
        self.srtp = "disabled"  # as configured: explains a 488
        self.recordings: list[Any] = []  # core.hearing.Recording: what this side recorded
        #: the agent keeps the SIP trace (``configure`` with ``trace: keep``): fetched only
        #: when a check reads it; ``deliver`` takes each fetched record (the engine's sink)
        self.keep_trace = False
        self.configured_args: dict[str, Any] | None = None  # local mode's ``configure``
        self.deliver: Callable[[dict[str, Any]], None] = box.post
        self._fetching = threading.Lock()

    # -- agent requests -----------------------------------------------------------------

    def send(self, op: str, **args: Any) -> ReplyLike:
        try:
            return self.agent.send(op, **args)
        except AgentCrashed as exc:
            raise AgentDied(exc.returncode, exc.stderr_tail) from None

    def wait_reply(self, op: str, reply: ReplyLike, timeout: float) -> dict[str, Any]:
        try:
            return reply.wait(timeout)
        except AgentCrashed as exc:
            raise AgentDied(exc.returncode, exc.stderr_tail) from None
        except AgentError as exc:
            raise StepFailed(f"{op} failed: {exc}") from None
        except TimeoutError:
            raise StepFailed(f"the agent of instance {self.name!r} did not answer {op!r} "
                             "in time", timed_out=True) from None

    def request(self, op: str, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        return self.wait_reply(op, self.send(op, **args), timeout or self.request_timeout)

    def transaction(self, op: str, limit: float, **args: Any) -> dict[str, Any]:
        """An op the agent answers once the peer has (re-INVITE, REFER): the agent is given
        the same bound, so it gives up when the step does."""
        reply = self.send(op, timeout=limit, **args)
        return self.wait_reply(op, reply, limit + self.request_timeout)

    # -- keys ---------------------------------------------------------------------------

    def handle(self, key: str, live: bool = True) -> str:
        """The call under ``key``; a wrong key fails without touching any other call."""
        handle = self.box.handle(key)
        if handle is None or (live and not self.box.is_live(handle)):
            calls = self.box.live_keys()
            state = "no call" if handle is None else "no active call (it has ended)"
            raise StepFailed(
                f"{state} under callId {key!r} on instance {self.name!r}",
                expected=f"a live call under callId {key!r}",
                actual=f"live calls: {', '.join(map(repr, calls))}" if calls else "no live call")
        return handle

    def free_key(self, key: str) -> None:
        old = self.box.handle(key)
        if old is not None and self.box.is_live(old):
            raise StepFailed(f"callId {key!r} already holds a live call on instance "
                             f"{self.name!r}; use another callId")

    def recent(self) -> str:
        events = self.box.recent()
        return "; ".join(e.describe() for e in events) if events else "nothing"

    def wait_for(self, match: Callable[[Event], bool], timeout: float, reason: str,
                 expected: str, consume: bool = True) -> Event:
        ev = self.box.take(match, timeout, consume)
        if ev is None:
            raise StepFailed(reason, expected=expected, actual=f"last events: {self.recent()}",
                             timed_out=True)
        return ev

    def wait_call(self, handle: str, types: set[str], what: str, timeout: float) -> Event:
        """An event of one call, left in the mailbox for later nodes (it is a state)."""
        return self.wait_for(lambda e: e.call == handle and e.type in types, timeout,
                             f"{what} within {_ms(timeout)}", what, consume=False)

    # -- commands -----------------------------------------------------------------------

    def dial(self, key: str | None, uri: str, headers: Mapping[str, str] | None = None,
             follow_redirects: bool = True) -> str:
        """Send the INVITE; the call is bound to ``key`` (None: its own handle) at once.
        Returns its handle."""
        if key is not None:
            self.free_key(key)
        extra = {} if follow_redirects else {"follow_redirects": False}
        handle = str(self.request("make_call", target=uri, headers=dict(headers or {}),
                                  **extra)["call"])
        self.box.bind(handle, handle if key is None else key)
        return handle

    def final_response(self, handle: str, timeout: float) -> Event:
        """``confirmed`` (2xx + ACK) or ``disconnected`` (the final error response)."""
        return self.wait_for(lambda e: e.call == handle and e.type in ("confirmed", "disconnected"),
                             timeout, f"no final response within {_ms(timeout)}",
                             "2xx final response", consume=False)

    def expect_answered(self, handle: str, uri: str, timeout: float) -> None:
        self.expect_final(handle, uri, None, timeout)

    def expect_final(self, handle: str, uri: str, expected: int | None, timeout: float,
                     checks: Checks = ()) -> str:
        """The INVITE's final response: 2xx, or exactly ``expected`` (a 486 expected is a
        pass, and an answered call is then released). Returns its status text."""
        ev = self.final_response(handle, timeout)
        message = self.message_of(ev, "final") if checks or "code" not in ev.raw else None
        if ev.type == "confirmed" and message is None:  # the agent names the 2xx it got
            code, status = int(ev.raw.get("code") or 200), status_text(ev) or "200 OK"
        elif ev.type == "confirmed":
            code = message.status if message.status else 200
            status = f"{code} {message.reason or ''}".strip()
        else:
            code, status = int(ev.raw.get("code") or 0), status_text(ev)
        ok = code == expected if expected is not None else 200 <= code < 300
        if not ok:
            if ev.type == "confirmed":  # answered against expectation: do not leave it up
                self.hang_up_quietly(handle, timeout)
            if expected is None:
                raise StepFailed(f"call to {uri} failed: {status}{srtp_hint(code, self.srtp)}",
                                 expected="2xx final response", actual=status)
            raise StepFailed(f"call to {uri}: expected {expected}, actual {status}",
                             expected=f"final response {expected}", actual=status)
        self.assert_headers(message, checks, DESCRIBES["final"])
        return status

    def expect_rejected(self, handle: str, code: int | None, timeout: float) -> int:
        """The INVITE's final error response: any non-2xx, or exactly ``code``."""
        ev = self.final_response(handle, timeout)
        got = int(ev.raw.get("code") or 0) if ev.type == "disconnected" else 200
        if ev.type == "confirmed" or (code is not None and got != code):
            raise StepFailed(f"call {handle} ended otherwise",
                             expected=str(code or "a non-2xx final response"),
                             actual=f"{got} {ev.raw.get('reason', '')}".strip())
        return got

    def hang_up_quietly(self, handle: str, timeout: float) -> None:
        """Release a call the step does not want; its own outcome is already decided."""
        try:
            if self.box.is_live(handle) and not self.request("hangup", call=handle).get(
                    "already_ended"):
                self.wait_call(handle, {"disconnected"}, "the call to end", timeout)
        except StepFailed:
            pass

    def answer(self, key: str, code: int, timeout: float,
               headers: Mapping[str, str] | None = None) -> None:
        """Answer with a 2xx and wait for the ACK."""
        handle = self.handle(key)
        self.request("answer", **_with_headers({"call": handle, "code": code}, headers))
        ev = self.wait_call(handle, {"confirmed", "disconnected"}, "ACK for the 2xx", timeout)
        if ev.type == "disconnected":
            raise StepFailed("the call ended before it was confirmed", expected="ACK",
                             actual=ev.describe())

    def respond(self, key: str, code: int, reason: str | None = None,
                headers: Mapping[str, str] | None = None) -> None:
        args: dict[str, Any] = {"call": self.handle(key), "code": code}
        if reason:
            args["reason"] = reason
        self.request("respond", **_with_headers(args, headers))

    def release(self, key: str, code: int | None, timeout: float,
                headers: Mapping[str, str] | None = None) -> bool:
        """End the call (BYE, CANCEL or a final response); False if it had already ended."""
        handle = self.handle(key, live=False)
        if not self.box.is_live(handle):
            return False
        args: dict[str, Any] = {"call": handle}
        if code is not None:
            args["code"] = code
        if self.request("hangup", **_with_headers(args, headers)).get("already_ended"):
            return False
        self.wait_call(handle, {"disconnected"}, "the call to end", timeout)
        return True

    def hold(self, key: str, timeout: float, headers: Mapping[str, str] | None = None) -> None:
        self.transaction("hold", timeout, **_with_headers({"call": self.handle(key)}, headers))

    def retrieve(self, key: str, timeout: float,
                 headers: Mapping[str, str] | None = None) -> None:
        self.transaction("retrieve", timeout,
                         **_with_headers({"call": self.handle(key)}, headers))

    def blind_transfer(self, key: str, target: str, timeout: float,
                       headers: Mapping[str, str] | None = None) -> None:
        """REFER the peer to ``target``; done when the REFER is accepted."""
        self.transaction("transfer", timeout,
                         **_with_headers({"call": self.handle(key), "target": target}, headers))

    def attended_transfer(self, primary_key: str, consult_key: str, timeout: float,
                          headers: Mapping[str, str] | None = None) -> Event:
        """REFER with Replaces; done at the final NOTIFY 2xx, then both legs are released."""
        primary, consult = self.handle(primary_key), self.handle(consult_key)
        self.transaction("transfer_attended", timeout,
                         **_with_headers({"call": primary, "dest_call": consult}, headers))
        ev = self.wait_notify(primary_key, None, True, timeout)
        code = int(ev.raw.get("code") or 0)
        if code >= 300:
            raise StepFailed(f"transfer failed: NOTIFY {status_text(ev)}",
                             expected="final NOTIFY 2xx", actual=f"NOTIFY {code}")
        for handle in (primary, consult):
            if self.box.is_live(handle):
                self.request("hangup", call=handle)
                self.wait_call(handle, {"disconnected"}, "the transferred leg to end", timeout)
        return ev

    def send_dtmf(self, key: str, digits: str, method: str, interval_ms: float,
                  headers: Mapping[str, str] | None = None) -> None:
        budget = len(digits) * (interval_ms + 300) / 1000.0 + self.request_timeout
        self.request("dtmf", timeout=budget, **_with_headers(
            {"call": self.handle(key), "digits": digits, "method": method,
             "interval_ms": int(interval_ms)}, headers))

    def play(self, key: str, path: Path, timeout: float, wait: bool = True) -> None:
        """Play a WAV file into the call; with ``wait``, to its end."""
        handle = self.handle(key)
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise StepFailed(f"cannot play {path}: {exc.strerror or exc}",
                             expected="a readable WAV file", actual=str(path)) from None
        play = self.request("play", call=handle, path=str(path)).get("play")
        if wait:
            self.wait_for(lambda e: e.type == "play_done" and e.call == handle
                          and e.raw.get("play", play) == play, timeout,
                          f"{path.name} did not finish playing within {_ms(timeout)}",
                          "end of file")

    def register(self, expected: int | None, headers: Mapping[str, str] | None,
                 timeout: float, checks: Checks = ()) -> dict[str, Any]:
        """REGISTER now: 2xx, or exactly ``expected`` (a 401/403 proves a refusal)."""
        reply = self.transaction("register", timeout, headers=dict(headers or {}))
        final_reply("REGISTER", reply, expected)
        if checks:  # the reply follows the response's trace record: it is in the mailbox
            message = completing_message(self.records(), None, "register")
            self.assert_headers(message, checks, DESCRIBES["register"])
        return reply

    def unregister(self, timeout: float) -> dict[str, Any]:
        """REGISTER with Expires: 0, answered with 2xx."""
        return final_reply("un-REGISTER", self.transaction("unregister", timeout), None)

    def send_message(self, uri: str, body: str, content_type: str,
                     headers: Mapping[str, str] | None, timeout: float) -> dict[str, Any]:
        """A pager-mode MESSAGE, answered with 2xx."""
        reply = self.transaction("send_message", timeout, target=uri, body=body,
                                 content_type=content_type, headers=dict(headers or {}))
        return final_reply("MESSAGE", reply, None)

    # -- events -------------------------------------------------------------------------

    def wait_incoming(self, key: str | None, timeout: float) -> Event:
        """The first new call nobody has claimed, bound to ``key`` (None: its own handle)."""
        if key is not None:
            self.free_key(key)
        ev = self.box.take_incoming(key, timeout)
        if ev is None:
            raise StepFailed(f"no incoming call within {_ms(timeout)}", expected="INCOMING",
                             actual=f"last events: {self.recent()}", timed_out=True)
        return ev

    def wait_event(self, key: str, etype: str, label: str, timeout: float) -> Event:
        return self.wait_for(lambda e: e.key == key and e.type == etype, timeout,
                             f"no {label} on callId {key!r} within {_ms(timeout)}", label)

    def wait_dtmf(self, key: str, expected: str | None, timeout: float,
                  checks: Checks = ()) -> str:
        """``len(expected)`` digits (or one), checked in order: a wrong one fails at once.
        ``checks`` apply to each digit's INFO (a digit that came in RTP has no message)."""
        got = ""
        end = time.monotonic() + timeout
        for i in range(len(expected) if expected else 1):
            ev = self.box.take(lambda e: e.key == key and e.type == "dtmf", _left(end))
            if ev is None:
                raise StepFailed(f"no DTMF on callId {key!r} within {_ms(timeout)}"
                                 + (f" after {got!r}" if got else ""),
                                 expected=expected or "a DTMF digit", actual=got or "no digit",
                                 timed_out=True)
            got += str(ev.raw.get("digit", "?"))
            if expected and got[i] != expected[i]:
                raise StepFailed(f"wrong DTMF digit {got[i]!r} at position {i + 1}",
                                 expected=expected, actual=got)
            if checks and ev.raw.get("method") != "info":
                raise StepFailed(f"DTMF digit {got[i]!r} came by {ev.raw.get('method')} (RTP): "
                                 "no SIP message to check headers on",
                                 expected="a digit sent by SIP INFO",
                                 actual=f"digit by {ev.raw.get('method')}")
            self.check_event(ev, "dtmf", checks)
        return got

    def wait_message(self, expected_body: str | None, timeout: float,
                     checks: Checks = ()) -> Event:
        """A pager-mode MESSAGE to this instance; with ``expected_body``, its body must match."""
        ev = self.wait_for(lambda e: e.type == "message", timeout,
                           f"no MESSAGE within {_ms(timeout)}", "MESSAGE")
        body = str(ev.raw.get("body") or "")
        if expected_body is not None and re.search(expected_body, body) is None:
            raise StepFailed(f"MESSAGE body does not match {expected_body!r}",
                             expected=f"a body matching {expected_body!r}", actual=repr(body))
        self.check_event(ev, "message", checks)
        return ev

    def wait_notify(self, key: str, code: int | None, final: bool, timeout: float) -> Event:
        """A transfer-progress NOTIFY (``code``, or the final one); never the REFER's own 2xx."""
        seen: list[str] = []
        end = time.monotonic() + timeout
        while True:
            ev = self.box.take(lambda e: e.key == key and e.type == "notify", _left(end))
            what = f"NOTIFY {code}" if code else ("a final NOTIFY" if final else "NOTIFY")
            if ev is None:
                raise StepFailed(f"no {what} on callId {key!r} within {_ms(timeout)}",
                                 expected=what, actual=", ".join(seen) or "no NOTIFY",
                                 timed_out=True)
            got = int(ev.raw.get("code") or 0)
            if (got, str(ev.raw.get("reason") or "")) == _REFER_ACCEPTED and not ev.raw.get("final"):
                continue
            seen.append(f"NOTIFY {got}")
            is_final = bool(ev.raw.get("final"))
            if (code is None or got == code) and (is_final or not final):
                return ev
            if is_final:
                raise StepFailed(f"transfer ended with NOTIFY {got}", expected=what,
                                 actual=", ".join(seen))

    def wait_connected(self, key: str, expected_codec: str | None, timeout: float) -> Event:
        """The call now under ``key`` is established (2xx + ACK) — also the new call that
        took the key over after a transfer or Replaces; ``expected_codec`` is then checked
        against the codec the agent reports negotiated."""
        box = self.box
        ev = self.wait_for(lambda e: e.type in ("confirmed", "disconnected")
                           and e.call is not None and e.call == box.handle(key), timeout,
                           f"no CONNECTED on callId {key!r} within {_ms(timeout)}",
                           "CONNECTED (2xx and ACK)", consume=False)
        if ev.type == "disconnected":
            raise StepFailed(f"the call under callId {key!r} ended before it was established",
                             expected="CONNECTED", actual=ev.describe())
        codec = ev.raw.get("codec")
        if expected_codec and not codec_matches(expected_codec, codec):
            raise StepFailed(f"negotiated codec is {codec or 'unknown'}, expected "
                             f"{expected_codec}", expected=expected_codec,
                             actual=str(codec or "no codec reported"))
        return ev

    # -- SIP messages and header checks -------------------------------------------------

    def records(self, upto: int | None = None) -> list[dict[str, Any]]:
        """The instance's SIP trace so far (the first ``upto`` records), fetched from the
        agent first when it keeps the trace."""
        if self.keep_trace:
            with self._fetching:
                reply = self.request("trace", since=self.box.sip_count())
                for record in reply.get("records") or ():
                    self.deliver(record)
        return self.box.sip_records(upto)

    def message_of(self, ev: Event, kind: str) -> SipMessage | None:
        """The received message that completed ``ev`` (see ``core.trace``)."""
        sip_call_id = ev.raw.get("sip_call_id") if kind == "message" else None
        return completing_message(self.records(ev.sip_mark), ev.call, kind, sip_call_id)

    def last_message(self, handle: str) -> SipMessage | None:
        """The last SIP message received on a call so far."""
        return last_received(self.records(), handle)

    def check_event(self, ev: Event, kind: str, checks: Checks) -> None:
        """``expectHeaders`` of an event node, on the message that completed it."""
        if checks:
            self.assert_headers(self.message_of(ev, kind), checks, DESCRIBES[kind])

    assert_headers = staticmethod(assert_headers)
