"""Per-instance event store: the no-lost-events rule (spec §4.3) lives here.

Every agent event is stored the moment it arrives and tagged with the dialog key
(callId) of its call as soon as that is known; a node consumes the first matching
event, even one that arrived before the node started waiting.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .failures import AgentDied

RETIRED = "\0retired"  # key of a call whose key was taken over by a transfer/replace


class Interrupted(Exception):
    """The scenario is aborting; the waiting node is cancelled."""


@dataclass
class Event:
    raw: dict[str, Any]
    key: str | None = None
    consumed: bool = False
    t: float = field(default_factory=time.monotonic)
    #: how many ``sip`` records of this instance had arrived (or, when the agent keeps
    #: the trace, were kept) before the event: the message that caused it is among them
    sip_mark: int = 0

    @property
    def type(self) -> str:
        return str(self.raw.get("event"))

    @property
    def call(self) -> str | None:
        return self.raw.get("call")

    def describe(self) -> str:
        bits = [self.type]
        for name in ("code", "reason", "digit", "from"):
            if self.raw.get(name) not in (None, ""):
                bits.append(str(self.raw[name]))
        where = f" on callId {self.key!r}" if self.key and self.key != RETIRED else ""
        return " ".join(bits) + where


class Mailbox:
    """One instance's events. ``follow_transfers``: a transfer or Replaces moves the dialog
    key to the new call (the scenario rule, §4.2); the Python API instead gives the new
    call its own key, because it hands the test a new ``Call`` object."""

    def __init__(self, instance: str, abort: threading.Event, follow_transfers: bool = True) -> None:
        self.instance = instance
        self._abort = abort
        self._follow = follow_transfers
        self._cond = threading.Condition()
        self._events: list[Event] = []
        self._key_of: dict[str, str] = {}  # call handle -> key (or RETIRED)
        self._handle_of: dict[str, str] = {}  # key -> current call handle
        self._bound: dict[str, str] = {}  # every handle ever bound -> its key (for reports)
        self._ended: set[str] = set()
        self._died: AgentDied | None = None
        self._sip: list[dict[str, Any]] = []  # the instance's SIP trace, in wire order

    # -- producer side (agent reader thread) --------------------------------------------

    def post(self, raw: dict[str, Any]) -> None:
        with self._cond:
            if raw.get("event") == "agent_died":
                self._died = AgentDied(raw.get("returncode"), list(raw.get("stderr") or []))
            elif raw.get("event") == "sip":
                self._sip.append(raw)
            else:
                ev = Event(raw, key=self._key_of.get(raw.get("call") or ""),
                           sip_mark=raw.get("sip_n", len(self._sip)))
                self._events.append(ev)
                if ev.type == "disconnected" and ev.call:
                    self._ended.add(ev.call)
                new = raw.get("new_call")
                if (self._follow and ev.type in ("transferred", "replaced") and new
                        and ev.key not in (None, RETIRED)):
                    self._take_over(ev.call or "", new, ev.key)  # type: ignore[arg-type]
            self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # -- keys ---------------------------------------------------------------------------

    def bind(self, handle: str, key: str) -> None:
        with self._cond:
            self._bind(handle, key)
            self._cond.notify_all()

    def _bind(self, handle: str, key: str) -> None:
        old = self._handle_of.get(key)
        if old is not None and old != handle:
            self._key_of[old] = RETIRED
        self._key_of[handle] = key
        self._handle_of[key] = handle
        self._bound[handle] = key
        for ev in self._events:
            if ev.call == handle and ev.key is None:
                ev.key = key

    def _take_over(self, old: str, new: str, key: str) -> None:
        self._bind(new, key)
        self._key_of[old] = RETIRED  # later events of the old call belong to no key

    def bound_keys(self) -> dict[str, str]:
        """Each call handle ever bound and its key, kept after a transfer retires it."""
        with self._cond:
            return dict(self._bound)

    def handle(self, key: str) -> str | None:
        with self._cond:
            return self._handle_of.get(key)

    def is_live(self, handle: str) -> bool:
        with self._cond:
            return handle not in self._ended

    def live_keys(self) -> list[str]:
        with self._cond:
            return [k for k, h in self._handle_of.items() if h not in self._ended]

    # -- consumer side (instance threads) -----------------------------------------------

    def take(self, match: Callable[[Event], bool], timeout: float, consume: bool = True,
             ) -> Event | None:
        """First unconsumed event ``match`` accepts, waiting up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for ev in self._events:
                    if not ev.consumed and match(ev):
                        if consume:
                            ev.consumed = True
                        return ev
                if self._died is not None:
                    raise self._died
                if self._abort.is_set():
                    raise Interrupted()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def take_incoming(self, key: str | None, timeout: float) -> Event | None:
        """An INCOMING: the first new call nobody has claimed yet, now bound to ``key``
        (``None``: to its own handle)."""
        with self._cond:
            ev = self.take(lambda e: e.type == "incoming" and e.key is None
                           and self._key_of.get(e.call or "") is None, timeout)
            if ev is not None and ev.call:
                self._bind(ev.call, key if key is not None else ev.call)
            return ev

    def sip_count(self) -> int:
        with self._cond:
            return len(self._sip)

    def sip_records(self, upto: int | None = None) -> list[dict[str, Any]]:
        """The instance's SIP trace so far (the first ``upto`` records when given)."""
        with self._cond:
            return list(self._sip[:upto] if upto is not None else self._sip)

    def recent(self, n: int = 5) -> list[Event]:
        with self._cond:
            return [e for e in self._events if e.key != RETIRED][-n:]
