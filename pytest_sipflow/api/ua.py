"""Live SIP user agents driven from Python: the engine behind the ``sip_instance`` fixture.

Every call step is the call core's (``core.phone``), the code the scenario engine runs, so
a test and a scenario fail alike: an ``AssertionError`` saying what was expected and what
happened instead. No pytest here (``__tracebackhide__`` only hides these frames).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Sequence

from ..core.account import Account
from ..core.failures import AgentDied, StepFailed
from ..core.lifecycle import send_configure, send_reset, wait_configured, wait_reset
from ..core.mailbox import Mailbox
from ..core.phone import AgentLike, Checks, Phone
from ..core.settings import EngineSettings
from ..core.targets import Directory, resolve
from ..errors import SipflowError
from ..sip import DEFAULT_CODECS, LOOPBACK
from ..sip.message import SipMessage
from .media import CallMedia

DEFAULT_TIMEOUT = 5.0


class SipActionError(SipflowError, AssertionError):
    """A helper could not do what it was asked (refused by the agent, wrong state)."""


class SipTimeout(SipflowError, AssertionError):
    """Something a test waited for did not happen in time."""


class UserAgent:
    """One SIP user agent (its own agent process): a phone of 127.0.0.1 in local mode, or a
    phone registered with a server when it has an :class:`~pytest_sipflow.core.account.Account`."""

    def __init__(self, agent: AgentLike, name: str, dn: str = "", label: str = "",
                 codecs: Sequence[str] = DEFAULT_CODECS, auto_ringing: bool = True,
                 timeout: float = DEFAULT_TIMEOUT,
                 directory: Directory | None = None, account: Account | None = None,
                 settings: EngineSettings | None = None, media: bool = False,
                 srtp: str = "disabled", srtp_keying: str = "sdes") -> None:
        __tracebackhide__ = True
        self.name = name
        self.dn = dn or name
        self.timeout = timeout
        self.agent = agent
        self.account = account
        self.settings = settings or EngineSettings()
        self.cleanup_warning: str | None = None  # set by close(): a failed un-REGISTER
        self._directory = directory or Directory()
        self._closed = threading.Event()
        self.phone = Phone(name, agent, Mailbox(name, self._closed, follow_transfers=False),
                           request_timeout=timeout)
        self.sip_messages: list[dict[str, Any]] = []
        self._calls: list[Call] = []
        agent.set_event_sink(self._sink)
        with self._step("configure"):
            wait_configured(self.phone, send_configure(
                self.phone, self.settings, account, dn=self.dn, display=label or name,
                codecs=codecs, auto_ringing=auto_ringing, media_stats=media, srtp=srtp,
                srtp_keying=srtp_keying), self.settings, account)
        # registered before it returns (unless register=False): the agent waits for it
        self.uri = account.aor if account else f"sip:{self.dn}@{LOOPBACK}:{agent.sip_port}"
        self._directory.add(self.uri, self.dn, self.name)

    def __repr__(self) -> str:
        return f"<UserAgent {self.name} {self.uri}>"

    # -- calls --------------------------------------------------------------------------

    def call(self, target: "UserAgent | str", headers: dict[str, str] | None = None,
             follow_redirects: bool = True) -> "Call":
        """Send an INVITE to another instance, a dn, or a sip: URI; returns at once.
        ``follow_redirects=False``: a 3xx ends the call instead of calling its Contact."""
        __tracebackhide__ = True
        with self._step("call"):
            uri = target.uri if isinstance(target, UserAgent) else self.resolve(target)
            handle = self.phone.dial(None, uri, headers, follow_redirects)
        return self._track(handle, "outgoing", remote=uri)

    def wait_incoming(self, timeout: float | None = None) -> "Call":
        """The next new call for this instance (also one that arrived before the wait)."""
        __tracebackhide__ = True
        with self._step("wait_incoming"):
            ev = self.phone.wait_incoming(None, self._limit(timeout))
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
        return [e.raw for e in self.phone.box.recent(10_000)]

    def resolve(self, target: str) -> str:
        """A target's SIP URI: with a server, a dn is ``sip:<dn>@<domain>`` (through the
        server, as in scenario files); locally, the address of the agent that has it."""
        return resolve(target, self._directory, self.account.domain if self.account else None)

    # -- real mode: registration and MESSAGE ------------------------------------------------

    def register(self, expected: int | None = None, headers: dict[str, str] | None = None,
                 timeout: float | None = None) -> int:
        """REGISTER now; returns the final code. Passes on 2xx, or on exactly ``expected``
        (e.g. 401 to prove the server refuses a wrong password)."""
        __tracebackhide__ = True
        with self._step("register"):
            self._need_server("register")
            reply = self.phone.register(expected, headers, self._register_limit(timeout))
        return int(reply.get("code") or 0)

    def unregister(self, timeout: float | None = None) -> int:
        """REGISTER with Expires: 0; passes on 2xx, returns the code."""
        __tracebackhide__ = True
        with self._step("unregister"):
            self._need_server("unregister")
            reply = self.phone.unregister(self._register_limit(timeout))
        return int(reply.get("code") or 0)

    def send_message(self, target: "UserAgent | str", body: str,
                     content_type: str = "text/plain", headers: dict[str, str] | None = None,
                     timeout: float | None = None) -> int:
        """A pager-mode SIP MESSAGE; passes on 2xx, returns the code."""
        __tracebackhide__ = True
        with self._step("send_message"):
            uri = target.uri if isinstance(target, UserAgent) else self.resolve(target)
            reply = self.phone.send_message(uri, body, content_type, headers,
                                            self._limit(timeout))
        return int(reply.get("code") or 0)

    def _need_server(self, what: str) -> None:
        if self.account is None:
            raise StepFailed(f"{what} needs a server: give sip_instance(..., registrar="
                             "'host:port') or run with --sipflow-registrar",
                             expected="a registrar", actual="local mode")

    def _register_limit(self, timeout: float | None) -> float:
        return self.settings.register_timeout_s if timeout is None else timeout

    def release_all(self) -> None:
        __tracebackhide__ = True
        for call in self.calls:
            call.release()

    def close(self) -> bool:
        """Hang up everything and make the agent clean for its next user; False if it is not."""
        __tracebackhide__ = True
        if self._closed.is_set():
            return True
        self._closed.set()
        self.phone.box.wake()
        self.agent.set_event_sink(None)
        if not self.agent.alive:
            return False
        healthy, trouble = wait_reset(self.phone, send_reset(self.phone, self.settings),
                                      self.settings)
        if trouble:  # the test is over: the factory warns once every agent is back
            self.cleanup_warning = f"{self.name}: un-REGISTER at clean-up failed: {trouble}"
        return healthy

    # -- pager-mode MESSAGE and header checks ----------------------------------------------

    def wait_message(self, expected_body: str | None = None, headers: Checks | None = None,
                     timeout: float | None = None) -> SipMessage:
        """The next MESSAGE to this instance (also one that came earlier), as the received
        SIP message (``.body``, ``.headers``); ``expected_body`` is a regex it must contain,
        ``headers`` checks as ``expectHeaders``."""
        __tracebackhide__ = True
        with self._step("wait_message"):
            ev = self.phone.wait_message(expected_body, self._limit(timeout), headers or ())
            message = self.phone.message_of(ev, "message")
            if message is None:
                raise StepFailed("the MESSAGE is missing from this instance's SIP trace")
        return message

    def assert_headers(self, message: SipMessage | None, checks: Checks) -> None:
        """Header checks (§4.9, the same as ``expectHeaders``) on any received message."""
        __tracebackhide__ = True
        with self._step("assert_headers"):
            self.phone.assert_headers(message, checks, "SIP message")

    # -- internals ----------------------------------------------------------------------

    def _limit(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout

    def _step(self, what: str) -> "_Step":
        return _Step(self, what)

    def _sink(self, raw: dict[str, Any]) -> None:
        if raw.get("event") == "sip":
            self.sip_messages.append(raw)
        self.phone.box.post(raw)  # sip records too: header checks read the trace

    def _track(self, handle: str, direction: str, remote: str) -> "Call":
        self.phone.box.bind(handle, handle)  # each call is its own dialog key
        call = Call(self, handle, direction, remote)
        self._calls.append(call)
        return call


class _Step:
    """Turns the core's failures into this API's assertion errors, named by instance."""

    def __init__(self, ua: UserAgent, what: str) -> None:
        self.ua, self.what = ua, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        __tracebackhide__ = True
        if isinstance(exc, StepFailed):
            error = SipTimeout if exc.timed_out else SipActionError
            raise error(f"{self.ua.name}: {exc.render()}") from None
        if isinstance(exc, AgentDied):
            raise SipActionError(f"{self.ua.name}: the agent died (exit code {exc.returncode}) "
                                 f"during {self.what}; stderr: {' | '.join(exc.stderr[-5:])}"
                                 ) from None
        return False


class Call(CallMedia):
    """One call leg of a :class:`UserAgent`; its handle is its dialog key."""

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
        return self.ua.phone.box.is_live(self.handle)

    def _do(self, what: str) -> _Step:
        return self.ua._step(what)

    def _t(self, timeout: float | None) -> float:
        return self.ua._limit(timeout)

    @property
    def _phone(self) -> Phone:
        return self.ua.phone

    # -- outgoing side ------------------------------------------------------------------

    def wait_ringing(self, timeout: float | None = None) -> int:
        """The 180/183 of this outgoing call; returns the code."""
        __tracebackhide__ = True
        with self._do("wait_ringing"):
            ev = self._phone.wait_event(self.handle, "ringing", "RINGING", self._t(timeout))
        return int(ev.raw.get("code", 180))

    def wait_answered(self, timeout: float | None = None) -> None:
        __tracebackhide__ = True
        with self._do("wait_answered"):
            self._phone.expect_answered(self.handle, self.remote, self._t(timeout))

    def wait_rejected(self, code: int | None = None, timeout: float | None = None) -> int:
        """The final error response of this call; checks ``code`` when given."""
        __tracebackhide__ = True
        with self._do("wait_rejected"):
            return self._phone.expect_rejected(self.handle, code, self._t(timeout))

    # -- incoming side ------------------------------------------------------------------

    def answer(self, code: int = 200, timeout: float | None = None) -> None:
        """Answer and wait for the ACK."""
        __tracebackhide__ = True
        with self._do("answer"):
            self._phone.answer(self.handle, code, self._t(timeout))

    def respond(self, code: int, reason: str | None = None) -> None:
        __tracebackhide__ = True
        with self._do("respond"):
            self._phone.respond(self.handle, code, reason)

    def ring(self) -> None:
        __tracebackhide__ = True
        self.respond(180)

    # -- both ---------------------------------------------------------------------------

    def release(self, code: int | None = None, timeout: float | None = None) -> None:
        """End the call (BYE, CANCEL or a final response) and wait until it is gone."""
        __tracebackhide__ = True
        with self._do("release"):
            self._phone.release(self.handle, code, self._t(timeout))

    def wait_disconnected(self, timeout: float | None = None) -> tuple[int, str]:
        __tracebackhide__ = True
        with self._do("wait_disconnected"):
            ev = self._phone.wait_event(self.handle, "disconnected", "DISCONNECTED",
                                        self._t(timeout))
        return int(ev.raw.get("code") or 0), str(ev.raw.get("reason", ""))

    def hold(self, timeout: float | None = None) -> None:
        __tracebackhide__ = True
        with self._do("hold"):
            self._phone.hold(self.handle, self._t(timeout))

    def retrieve(self, timeout: float | None = None) -> None:
        __tracebackhide__ = True
        with self._do("retrieve"):
            self._phone.retrieve(self.handle, self._t(timeout))

    def wait_held(self, timeout: float | None = None) -> None:
        __tracebackhide__ = True
        with self._do("wait_held"):
            self._phone.wait_event(self.handle, "held", "HELD", self._t(timeout))

    def wait_retrieved(self, timeout: float | None = None) -> None:
        __tracebackhide__ = True
        with self._do("wait_retrieved"):
            self._phone.wait_event(self.handle, "retrieved", "RETRIEVED", self._t(timeout))

    def transfer(self, target: "UserAgent | str", timeout: float | None = None) -> None:
        """Blind transfer: REFER the peer to ``target``; returns once the REFER is accepted."""
        __tracebackhide__ = True
        with self._do("transfer"):
            uri = target.uri if isinstance(target, UserAgent) else self.ua.resolve(target)
            self._phone.blind_transfer(self.handle, uri, self._t(timeout))

    def transfer_attended(self, consult: "Call", timeout: float | None = None) -> int:
        """Attended transfer to ``consult``'s peer; waits for the final NOTIFY, then releases both legs."""
        __tracebackhide__ = True
        with self._do("transfer_attended"):
            ev = self._phone.attended_transfer(self.handle, consult.handle, self._t(timeout))
        return int(ev.raw.get("code") or 0)

    def wait_notify(self, code: int | None = None, final: bool = False,
                    timeout: float | None = None) -> int:
        """A transfer-progress NOTIFY (its sipfrag code); ``final`` skips provisional ones."""
        __tracebackhide__ = True
        with self._do("wait_notify"):
            ev = self._phone.wait_notify(self.handle, code, final, self._t(timeout))
        return int(ev.raw.get("code") or 0)

    def wait_transferred(self, timeout: float | None = None) -> "Call":
        """This call was REFERred: returns the new call the agent placed to the target."""
        __tracebackhide__ = True
        with self._do("wait_transferred"):
            ev = self._phone.wait_event(self.handle, "transferred", "TRANSFERRED (a REFER)",
                                        self._t(timeout))
        return self.ua._track(str(ev.raw.get("new_call")), "outgoing",
                              str(ev.raw.get("target", self.remote)))

    def wait_replaced(self, timeout: float | None = None) -> "Call":
        """An INVITE with Replaces took over this call: returns the new call."""
        __tracebackhide__ = True
        with self._do("wait_replaced"):
            ev = self._phone.wait_event(self.handle, "replaced", "an INVITE with Replaces",
                                        self._t(timeout))
        return self.ua._track(str(ev.raw.get("new_call")), "incoming", self.remote)

    def send_dtmf(self, digits: str, method: str = "rfc2833", interval_ms: int = 100) -> None:
        __tracebackhide__ = True
        with self._do("send_dtmf"):
            self._phone.send_dtmf(self.handle, digits, method, interval_ms)

    def wait_dtmf(self, expected: str | None = None, timeout: float | None = None) -> str:
        """Digits received on this call: ``len(expected)`` of them (or one), checked in order."""
        __tracebackhide__ = True
        with self._do("wait_dtmf"):
            return self._phone.wait_dtmf(self.handle, expected, self._t(timeout))

    def play(self, path: str | Path, wait: bool = True, timeout: float | None = None) -> None:
        """Play a WAV file into the call; with ``wait`` until its end."""
        __tracebackhide__ = True
        with self._do("play"):
            self._phone.play(self.handle, Path(path).resolve(), self._t(timeout), wait)

    # -- received messages and header checks -------------------------------------------

    @property
    def last_message(self) -> SipMessage | None:
        """The last SIP message this call received (``.headers``, ``.status``, ``.method``,
        ``.request_uri``, ``.body``), or None before any."""
        return self._phone.last_message(self.handle)

    def assert_headers(self, checks: Checks, message: SipMessage | None = None) -> None:
        """Check ``last_message`` (or ``message``) like ``expectHeaders``: a regex per header,
        ``{"absent": True}`` or ``{"notMatch": regex}``; fails naming header, check, value."""
        __tracebackhide__ = True
        with self._do("assert_headers"):
            self._phone.assert_headers(message if message is not None else self.last_message,
                                       checks, f"SIP message on call {self.handle}")

    def wait_connected(self, expected_codec: str | None = None,
                       timeout: float | None = None) -> str | None:
        """The call is established (2xx and ACK); returns the negotiated codec, checked
        against ``expected_codec`` ("PCMA", "PCMA/8000") when given."""
        __tracebackhide__ = True
        with self._do("wait_connected"):
            ev = self._phone.wait_connected(self.handle, expected_codec, self._t(timeout))
        codec = ev.raw.get("codec")
        return str(codec) if codec else None
