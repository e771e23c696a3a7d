"""Live SIP user agents driven from Python: the engine behind the ``sip_instance`` fixture.

Each :class:`UserAgent` owns one agent process from the pool. Every helper blocks with a
timeout; a wait that times out raises an ``AssertionError`` saying what was expected and
which events arrived instead, so a test reads like its call flow. No pytest in here.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from .agent.client import Agent, AgentError
from .engine.mailbox import AgentDied, Event, Mailbox
from .errors import SipflowError

LOOPBACK = "127.0.0.1"
DEFAULT_TIMEOUT = 5.0


class SipActionError(SipflowError, AssertionError):
    """A helper could not do what it was asked (refused by the agent, wrong state)."""


class SipTimeout(SipflowError, AssertionError):
    """Something a test waited for did not happen in time."""


class UserAgent:
    """One SIP user agent on 127.0.0.1 (its own agent process)."""

    def __init__(self, agent: Agent, name: str, dn: str = "", label: str = "",
                 codecs: Sequence[str] = ("PCMU", "PCMA"), auto_ringing: bool = True,
                 timeout: float = DEFAULT_TIMEOUT,
                 resolve: Callable[[str], str | None] | None = None) -> None:
        self.name = name
        self.dn = dn or name
        self.timeout = timeout
        self.agent = agent
        self._resolve = resolve or (lambda _: None)
        self._closed = threading.Event()
        self._box = Mailbox(name, self._closed)
        self.sip_messages: list[dict[str, Any]] = []
        self._calls: list[Call] = []
        agent.set_event_sink(self._sink)
        agent.request("configure", dn=self.dn, display=label or name, codecs=list(codecs),
                      auto_ringing=auto_ringing)
        self.uri = f"sip:{self.dn}@{LOOPBACK}:{agent.sip_port}"

    def __repr__(self) -> str:
        return f"<UserAgent {self.name} {self.uri}>"

    # -- calls --------------------------------------------------------------------------

    def call(self, target: "UserAgent | str", headers: dict[str, str] | None = None) -> "Call":
        """Send an INVITE to another instance, a dn, or a sip: URI; returns at once."""
        uri = self._target(target)
        reply = self._request("make_call", target=uri, headers=dict(headers or {}))
        call = self._track(reply["call"], "outgoing", remote=uri)
        return call

    def wait_incoming(self, timeout: float | None = None) -> "Call":
        """The next new call for this instance (also one that arrived before the wait)."""
        ev = self._wait(lambda e: e.type == "incoming" and e.key is None, timeout, "an incoming call")
        call = self._track(ev.call or "", "incoming", remote=str(ev.raw.get("from", "")))
        call.from_uri = str(ev.raw.get("from", ""))
        call.to_uri = str(ev.raw.get("to", ""))
        call.headers = dict(ev.raw.get("headers") or {})
        return call

    @property
    def calls(self) -> list["Call"]:
        """Calls of this instance that are still up."""
        return [c for c in self._calls if c.is_live]

    @property
    def events(self) -> list[dict[str, Any]]:
        """Every event this instance saw, oldest first (plain dicts)."""
        return [e.raw for e in self._box.recent(10_000)]

    def release_all(self) -> None:
        for call in self.calls:
            call.release()

    def close(self) -> bool:
        """Hang up everything and make the agent clean for its next user; False if it is not."""
        if self._closed.is_set():
            return True
        self._closed.set()
        self._box.wake()
        self.agent.set_event_sink(None)
        if not self.agent.alive:
            return False
        try:
            self.agent.request("reset")
        except (AgentError, TimeoutError):
            return False
        return True

    # -- internals ----------------------------------------------------------------------

    def _sink(self, raw: dict[str, Any]) -> None:
        if raw.get("event") == "sip":
            self.sip_messages.append(raw)
        else:
            self._box.post(raw)

    def _target(self, target: "UserAgent | str") -> str:
        if isinstance(target, UserAgent):
            return target.uri
        if target.startswith(("sip:", "sips:")):
            return target
        found = self._resolve(target)
        if found:
            return found
        if "@" in target:
            return f"sip:{target}"
        raise SipActionError(f"{self.name}: bad target {target!r}: not a sip: URI and no "
                             "sip_instance has this dn or name")

    def _track(self, handle: str, direction: str, remote: str) -> "Call":
        self._box.bind(handle, handle)  # each call is its own key
        call = Call(self, handle, direction, remote)
        self._calls.append(call)
        return call

    def _request(self, op: str, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        try:
            return self.agent.request(op, timeout=timeout or self.timeout, **args)
        except AgentError as exc:
            raise SipActionError(f"{self.name}: {op} failed: {exc}") from None
        except TimeoutError:
            raise SipActionError(f"{self.name}: the agent did not answer {op!r} in time") from None

    def _wait(self, match: Callable[[Event], bool], timeout: float | None, what: str,
              consume: bool = True) -> Event:
        limit = self.timeout if timeout is None else timeout
        try:
            ev = self._box.take(match, limit, consume)
        except AgentDied as exc:
            raise SipActionError(f"{self.name}: the agent died (exit code {exc.returncode}) "
                                 f"while waiting for {what}; stderr: {' | '.join(exc.stderr[-5:])}"
                                 ) from None
        if ev is None:
            raise SipTimeout(f"{self.name}: expected {what} within {limit:g} s\n"
                             f"  expected: {what}\n  actual:   {self._last_events()}")
        return ev

    def _last_events(self) -> str:
        recent = [e for e in self._box.recent(6)]
        return "; ".join(e.describe() for e in recent) if recent else "no events at all"


class Call:
    """One call leg of a :class:`UserAgent`."""

    def __init__(self, ua: UserAgent, handle: str, direction: str, remote: str) -> None:
        self.ua = ua
        self.handle = handle
        self.direction = direction  # "outgoing" | "incoming"
        self.remote = remote
        self.from_uri = ""
        self.to_uri = ""
        self.headers: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<Call {self.ua.name}/{self.handle} {self.direction} {self.remote}>"

    @property
    def is_live(self) -> bool:
        return self.ua._box.is_live(self.handle)

    def _on(self, types: set[str], what: str, timeout: float | None, consume: bool = True) -> Event:
        return self.ua._wait(lambda e: e.call == self.handle and e.type in types, timeout,
                             f"{what} on call {self.handle}", consume)

    # -- outgoing side ------------------------------------------------------------------

    def wait_ringing(self, timeout: float | None = None) -> int:
        """The 180/183 of this outgoing call; returns the code."""
        return int(self._on({"ringing"}, "ringing (180/183)", timeout).raw.get("code", 180))

    def wait_answered(self, timeout: float | None = None) -> None:
        ev = self._on({"confirmed", "disconnected"}, "a 2xx answer", timeout, consume=False)
        if ev.type == "disconnected":
            raise SipActionError(f"{self.ua.name}: call {self.handle} was not answered\n"
                                 f"  expected: 2xx\n  actual:   {ev.raw.get('code')} "
                                 f"{ev.raw.get('reason', '')}")

    def wait_rejected(self, code: int | None = None, timeout: float | None = None) -> int:
        """The final error response of this call; checks ``code`` when given."""
        ev = self._on({"confirmed", "disconnected"}, f"a {code or 'non-2xx'} response", timeout,
                      consume=False)
        got = int(ev.raw.get("code") or 0) if ev.type == "disconnected" else 200
        if ev.type == "confirmed" or (code is not None and got != code):
            raise SipActionError(f"{self.ua.name}: call {self.handle} ended otherwise\n"
                                 f"  expected: {code or 'a non-2xx final response'}\n"
                                 f"  actual:   {got} {ev.raw.get('reason', '')}")
        return got

    # -- incoming side ------------------------------------------------------------------

    def answer(self, code: int = 200, timeout: float | None = None) -> None:
        """Answer and wait for the ACK."""
        self.ua._request("answer", call=self.handle, code=code)
        ev = self._on({"confirmed", "disconnected"}, "the ACK", timeout, consume=False)
        if ev.type == "disconnected":
            raise SipActionError(f"{self.ua.name}: call {self.handle} ended before the ACK")

    def respond(self, code: int, reason: str | None = None) -> None:
        args: dict[str, Any] = {"call": self.handle, "code": code}
        if reason:
            args["reason"] = reason
        self.ua._request("respond", **args)

    def ring(self) -> None:
        self.respond(180)

    # -- both ---------------------------------------------------------------------------

    def release(self, code: int | None = None, timeout: float | None = None) -> None:
        """End the call (BYE, CANCEL or a final response) and wait until it is gone."""
        if not self.is_live:
            return
        args: dict[str, Any] = {"call": self.handle}
        if code is not None:
            args["code"] = code
        if self.ua._request("hangup", **args).get("already_ended"):
            return
        self._on({"disconnected"}, "the end of the call", timeout, consume=False)

    def wait_disconnected(self, timeout: float | None = None) -> tuple[int, str]:
        ev = self._on({"disconnected"}, "DISCONNECTED", timeout)
        return int(ev.raw.get("code") or 0), str(ev.raw.get("reason", ""))

    def hold(self, timeout: float | None = None) -> None:
        self.ua._request("hold", timeout=timeout, call=self.handle)

    def retrieve(self, timeout: float | None = None) -> None:
        self.ua._request("retrieve", timeout=timeout, call=self.handle)

    def wait_held(self, timeout: float | None = None) -> None:
        self._on({"held"}, "HELD", timeout)

    def wait_retrieved(self, timeout: float | None = None) -> None:
        self._on({"retrieved"}, "RETRIEVED", timeout)

    def transfer(self, target: "UserAgent | str", timeout: float | None = None) -> None:
        """Blind transfer: REFER the peer to ``target``; returns once the REFER is accepted."""
        self.ua._request("transfer", timeout=timeout, call=self.handle,
                         target=self.ua._target(target))

    def transfer_attended(self, consult: "Call", timeout: float | None = None) -> int:
        """Attended transfer to ``consult``'s peer; waits for the final NOTIFY, then releases both legs."""
        self.ua._request("transfer_attended", timeout=timeout, call=self.handle,
                         dest_call=consult.handle)
        code = self.wait_notify(final=True, timeout=timeout)
        if code >= 300:
            raise SipActionError(f"{self.ua.name}: attended transfer failed\n"
                                 f"  expected: NOTIFY 2xx\n  actual:   NOTIFY {code}")
        self.release()
        consult.release()
        return code

    def wait_notify(self, code: int | None = None, final: bool = False,
                    timeout: float | None = None) -> int:
        """A transfer-progress NOTIFY (its sipfrag code); ``final`` skips provisional ones."""
        what = f"NOTIFY {code}" if code else ("a final NOTIFY" if final else "a NOTIFY")
        ev = self.ua._wait(lambda e: e.call == self.handle and e.type == "notify"
                           and (not final or bool(e.raw.get("final")))
                           and (code is None or e.raw.get("code") == code), timeout,
                           f"{what} on call {self.handle}")
        return int(ev.raw.get("code") or 0)

    def wait_transferred(self, timeout: float | None = None) -> "Call":
        """This call was REFERred: returns the new call the agent placed to the target."""
        ev = self._on({"transferred"}, "TRANSFERRED (a REFER)", timeout)
        return self._follow(ev)

    def wait_replaced(self, timeout: float | None = None) -> "Call":
        """An INVITE with Replaces took over this call: returns the new call."""
        return self._follow(self._on({"replaced"}, "an INVITE with Replaces", timeout))

    def _follow(self, ev: Event) -> "Call":
        new = str(ev.raw.get("new_call"))
        call = Call(self.ua, new, "outgoing" if ev.type == "transferred" else "incoming",
                    str(ev.raw.get("target", self.remote)))
        self.ua._calls.append(call)
        return call

    def send_dtmf(self, digits: str, method: str = "rfc2833", interval_ms: int = 100) -> None:
        budget = len(digits) * (interval_ms + 300) / 1000.0 + self.ua.timeout
        self.ua._request("dtmf", timeout=budget, call=self.handle, digits=digits,
                         method=method, interval_ms=interval_ms)

    def wait_dtmf(self, expected: str | None = None, timeout: float | None = None) -> str:
        """Digits received on this call: ``len(expected)`` of them (or one), checked in order."""
        got = ""
        for i in range(len(expected) if expected else 1):
            try:
                ev = self._on({"dtmf"}, f"DTMF {expected!r}" if expected else "a DTMF digit", timeout)
            except SipTimeout as exc:
                raise SipTimeout(f"{exc}\n  digits so far: {got!r}") from None
            got += str(ev.raw.get("digit"))
            if expected and got[i] != expected[i]:
                raise SipActionError(f"{self.ua.name}: wrong DTMF digit on call {self.handle}\n"
                                     f"  expected: {expected}\n  actual:   {got}")
        return got

    def play(self, path: str | Path, wait: bool = True, timeout: float | None = None) -> None:
        """Play a WAV file into the call; with ``wait`` until its end."""
        path = Path(path).resolve()
        if not path.is_file():
            raise SipActionError(f"{self.ua.name}: cannot play {path}: no such file")
        self.ua._request("play", call=self.handle, path=str(path))
        if wait:
            self._on({"play_done"}, f"the end of {path.name}", timeout)
