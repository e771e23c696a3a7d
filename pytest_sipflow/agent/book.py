"""Call and registration bookkeeping of an agent, as plain objects with an injected clock.

No pjsua2 here (nor pytest): the pjsua2 module stores its objects in these books and asks
them what is due; the rules (handles never reused, Call-ID → handle, deferred replies with
deadlines, DTMF pacing, pjlib's socket table budget, when the loop must wake next) are
unit-tested with a fake clock.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

Clock = Callable[[], float]
T = TypeVar("T")

#: pjlib's ioqueue has 64 handles, shared by the SIP transports (UDP, wake-up, TCP/TLS
#: listeners and connections) and every call's RTP+RTCP sockets; a closed socket's handle
#: is reusable only ~500 ms later, and an empty free list is a C assert (abort).
IOQUEUE_HANDLES = 64
IOQUEUE_RESERVED = 8
SOCKETS_PER_CALL = 2
SOCKET_FREE_DELAY_S = 0.65

DTMF_DEFAULT_DURATION_MS = 160


class CallBook(Generic[T]):
    """Live calls by handle ("c1", "c2", … never reused), ended handles, Call-ID → handle."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.live: dict[str, T] = {}
        self.ended: set[str] = set()
        self.callids: dict[str, str] = {}
        self._next = 1

    def new_handle(self) -> str:
        handle = f"c{self._next}"
        self._next += 1
        return handle

    def add(self, handle: str, call: T) -> None:
        self.live[handle] = call

    def get(self, handle: str) -> T | None:
        return self.live.get(handle)

    def end(self, handle: str) -> T | None:
        """Mark ``handle`` ended; returns its call if it was live."""
        self.ended.add(handle)
        return self.live.pop(handle, None)

    def discard(self, handle: str) -> T | None:
        """Forget a call that never existed for pjsua (its set-up raised)."""
        return self.live.pop(handle, None)

    def note_callid(self, callid: str | None, handle: str) -> None:
        if callid:
            self.callids[callid] = handle

    def handle_of(self, callid: str | None) -> str | None:
        return self.callids.get(callid) if callid else None

    def callid_of(self, handle: str) -> str | None:
        return next((k for k, v in self.callids.items() if v == handle), None)

    def prune_callids(self, keep_max: int = 2000) -> None:
        """Bound the map: late messages of old calls then just get ``call: null``."""
        if len(self.callids) > keep_max:
            self.callids = {k: v for k, v in self.callids.items() if v in self.live}

    def __len__(self) -> int:
        return len(self.live)

    def __contains__(self, handle: object) -> bool:
        return handle in self.live


@dataclass
class Pending:
    """A request whose reply waits for a SIP outcome (re-INVITE, REFER, REGISTER, MESSAGE…)."""

    req_id: Any
    op: str
    kind: str          # "reinvite" | "refer" | "register" | "message" | …
    key: str           # what it waits on: a call handle, "account", a message id
    deadline: float
    what: str          # for the timeout error: "final response to the re-INVITE"
    data: dict[str, Any] = field(default_factory=dict)


class PendingOps:
    """Deferred replies keyed by (key, kind); at most one per key and kind."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._ops: list[Pending] = []

    def add(self, req_id: Any, op: str, kind: str, key: str, timeout: float, what: str,
            **data: Any) -> Pending:
        if self.find(key, kind) is not None:
            raise ValueError(f"{key}: a previous {op} is still waiting for its answer")
        pending = Pending(req_id, op, kind, key, self.clock() + timeout, what, dict(data))
        self._ops.append(pending)
        return pending

    def find(self, key: str, kind: str) -> Pending | None:
        return next((p for p in self._ops if p.key == key and p.kind == kind), None)

    def remove(self, pending: Pending) -> None:
        if pending in self._ops:
            self._ops.remove(pending)

    def take(self, key: str | None = None, kind: str | None = None) -> list[Pending]:
        """Remove and return the operations matching ``key``/``kind`` (None = any)."""
        hit = [p for p in self._ops if (key is None or p.key == key)
               and (kind is None or p.kind == kind)]
        for p in hit:
            self._ops.remove(p)
        return hit

    def expired(self) -> list[Pending]:
        now = self.clock()
        gone = [p for p in self._ops if now >= p.deadline]
        for p in gone:
            self._ops.remove(p)
        return gone

    def next_deadline(self) -> float | None:
        return min((p.deadline for p in self._ops), default=None)

    def __len__(self) -> int:
        return len(self._ops)


class DtmfJob:
    """Digits sent one at a time, ``interval_ms`` apart, without blocking the loop.

    RFC 2833 tone length = min(160, max(40, 2/3·interval)) ms (160 when interval is 0).
    The stream queues tones, so ``busy_until`` tracks when the last one (and its end
    packets) left; the reply waits for that.
    """

    def __init__(self, req_id: Any, handle: str, digits: str, method: str, interval_ms: int,
                 clock: Clock = time.monotonic, headers: dict[str, str] | None = None) -> None:
        self.req_id = req_id
        #: extra headers of each INFO (``info`` only; the agent then sends the INFO itself)
        self.headers = dict(headers or {})
        self.handle = handle
        self.digits = digits
        self.method = method
        self.clock = clock
        self.interval = interval_ms / 1000.0
        self.index = 0
        self.next_at = clock()
        self.reply_at: float | None = None
        self.busy_until = 0.0
        if interval_ms <= 0:
            self.duration = DTMF_DEFAULT_DURATION_MS
        else:
            self.duration = max(40, min(DTMF_DEFAULT_DURATION_MS, interval_ms * 2 // 3))

    @property
    def next_digit(self) -> str:
        return self.digits[self.index]

    def sent(self) -> bool:
        """Record that the next digit went out; True when the job can reply now."""
        self.index += 1
        now = self.clock()
        if self.method == "rfc2833":
            self.busy_until = max(now, self.busy_until) + (self.duration + 20) / 1000.0
        if self.index >= len(self.digits):
            if self.method == "rfc2833":
                self.reply_at = self.busy_until + 0.04
                return False
            return True
        self.next_at = now + self.interval
        return False

    def due(self) -> str | None:
        """"send", "reply" or None: what the loop must do for this job now."""
        now = self.clock()
        if self.reply_at is not None:
            return "reply" if now >= self.reply_at else None
        return "send" if now >= self.next_at else None

    def wake_at(self) -> float:
        return self.reply_at if self.reply_at is not None else self.next_at


class SocketBudget:
    """Counts pjlib ioqueue handles of calls (live, and closed < 0.65 s ago)."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self.releases: collections.deque[float] = collections.deque()

    def released(self) -> None:
        """A call's sockets were closed now: their handles come back a little later."""
        self.releases.append(self.clock() + SOCKET_FREE_DELAY_S)

    def in_use(self, live_calls: int) -> int:
        now = self.clock()
        while self.releases and self.releases[0] <= now:
            self.releases.popleft()
        return SOCKETS_PER_CALL * (live_calls + len(self.releases))

    def fits(self, live_calls: int) -> bool:
        """Whether one more call's sockets fit now."""
        return self.in_use(live_calls) + SOCKETS_PER_CALL <= IOQUEUE_HANDLES - IOQUEUE_RESERVED

    def next_release(self) -> float | None:
        return self.releases[0] if self.releases else None


def next_wake(now: float, *due: float | None, idle_max: float = 1.0) -> float:
    """Seconds the loop may block: until the earliest due time, at most ``idle_max``, ≥ 0."""
    times = [t for t in due if t is not None]
    if not times:
        return idle_max
    return max(0.0, min(idle_max, min(times) - now))
