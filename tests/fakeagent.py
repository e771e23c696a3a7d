"""A fake agent behind the agent API, for the engine's own control flow (no pjsua2, no SIP).

It proves abort, deadline, branch and event-delivery logic fast and deterministically; real
SIP keeps covering every SIP path elsewhere. Calls between fake agents are simulated just
enough: INVITE → incoming (+180), answer → confirmed, hangup/reject → disconnected, hold →
held, DTMF → digits. Events are delivered on a reader thread of each fake agent, as the
real client does.
"""

from __future__ import annotations

import itertools
import queue
import re
import threading
import time
from typing import Any, Callable

from pytest_sipflow.agent.client import AgentError

Sink = Callable[[dict[str, Any]], None]


class FakeReply:
    def __init__(self, result: dict[str, Any] | None = None, error: str | None = None) -> None:
        self.result, self.error = result or {}, error

    def wait(self, timeout: float = 5.0) -> dict[str, Any]:
        if self.error is not None:
            raise AgentError(self.error)
        return self.result


class FakeNetwork:
    """Routes fake calls by port; ``acquire_delay`` makes agent start-up slow."""

    def __init__(self, acquire_delay: float = 0.0) -> None:
        self.acquire_delay = acquire_delay
        self.agents: dict[int, FakeAgent] = {}
        self.ports = itertools.count(40000, 2)
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, dict[str, Any]]] = []  # (agent, op, args)
        self.released: list[tuple[FakeAgent, bool]] = []

    # AgentProvider
    def acquire(self, count: int) -> list["FakeAgent"]:
        time.sleep(self.acquire_delay)
        return [FakeAgent(self, next(self.ports)) for _ in range(count)]

    def release(self, agent: "FakeAgent", healthy: bool) -> None:
        self.released.append((agent, healthy))
        agent.close()


class FakeAgent:
    def __init__(self, net: FakeNetwork, port: int) -> None:
        self.net = net
        self.sip_port = port
        self.name = f"fake{port}"
        self.pid = port
        self.dn = ""
        self.auto_ringing = True
        self.calls: dict[str, tuple[FakeAgent, str]] = {}  # handle -> (peer, peer handle)
        self.ended: set[str] = set()
        self._ids = itertools.count(1)
        self._sink: Sink | None = None
        self._events: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._reader = threading.Thread(target=self._deliver, name=f"{self.name}-reader")
        self._reader.start()
        with net.lock:
            net.agents[port] = self

    @property
    def alive(self) -> bool:
        return self._reader.is_alive()

    def set_event_sink(self, sink: Sink | None) -> None:
        self._sink = sink

    def stderr_tail(self, n: int = 20) -> list[str]:
        return []

    def close(self) -> None:
        self._events.put(None)
        if self._reader is not threading.current_thread():
            self._reader.join()

    def post(self, event: str, **fields: Any) -> None:
        self._events.put({"event": event, **fields})

    def _deliver(self) -> None:
        while (ev := self._events.get()) is not None:
            sink = self._sink
            if sink is not None:
                sink(ev)

    def _new(self) -> str:
        return f"c{next(self._ids)}"

    def send(self, op: str, **args: Any) -> FakeReply:
        self.net.requests.append((self.name, op, args))
        fn = getattr(self, f"op_{op}", None)
        if fn is None:
            return FakeReply(error=f"{op}: not simulated by the fake agent")
        try:
            return FakeReply(fn(**args))
        except AgentError as exc:
            return FakeReply(error=str(exc))

    def request(self, op: str, timeout: float = 5.0, **args: Any) -> dict[str, Any]:
        return self.send(op, **args).wait(timeout)

    def _call(self, handle: str) -> tuple["FakeAgent", str]:
        if handle not in self.calls:
            raise AgentError(f"call {handle} has ended" if handle in self.ended
                             else f"unknown call {handle!r}")
        return self.calls[handle]

    def _end(self, handle: str, code: int, reason: str) -> None:
        if self.calls.pop(handle, None) is not None:
            self.ended.add(handle)
            self.post("disconnected", call=handle, code=code, reason=reason)

    # ops -----------------------------------------------------------------------------
    def op_configure(self, dn: str = "", auto_ringing: bool = True, **_: Any) -> dict[str, Any]:
        self.dn, self.auto_ringing = dn, auto_ringing
        return {"uri": f"sip:{dn}@127.0.0.1:{self.sip_port}"}

    def op_reset(self, **_: Any) -> dict[str, Any]:
        for handle in list(self.calls):
            self.op_hangup(call=handle)
        return {}

    def op_make_call(self, target: str, headers: dict[str, str] | None = None,
                     **_: Any) -> dict[str, Any]:
        handle = self._new()
        self.post("sip", dir="tx", summary=f"INVITE {target} SIP/2.0", call=handle)
        m = re.search(r":(\d+)$", target)
        callee = self.net.agents.get(int(m.group(1))) if m else None
        if callee is None:
            self.ended.add(handle)
            self.post("disconnected", call=handle, code=408, reason="Request Timeout")
            return {"call": handle}
        theirs = callee._new()
        self.calls[handle] = (callee, theirs)
        callee.calls[theirs] = (self, handle)
        callee.post("incoming", call=theirs, **{"from": f"sip:{self.dn}@127.0.0.1:{self.sip_port}"},
                    to=target, headers=dict(headers or {}))
        if callee.auto_ringing:
            self.post("ringing", call=handle, code=180)
        return {"call": handle}

    def op_answer(self, call: str, code: int = 200, **_: Any) -> dict[str, Any]:
        peer, theirs = self._call(call)
        self.post("confirmed", call=call)
        peer.post("confirmed", call=theirs)
        return {}

    def op_respond(self, call: str, code: int, reason: str = "", **_: Any) -> dict[str, Any]:
        peer, theirs = self._call(call)
        if code >= 300:
            self._end(call, code, reason or "Rejected")
            peer._end(theirs, code, reason or "Rejected")
        elif code in (180, 183):
            peer.post("ringing", call=theirs, code=code)
        return {}

    def op_hangup(self, call: str, **_: Any) -> dict[str, Any]:
        if call in self.ended and call not in self.calls:
            return {"already_ended": True}
        peer, theirs = self._call(call)
        self._end(call, 200, "Normal call clearing")
        peer._end(theirs, 200, "Normal call clearing")
        return {"already_ended": False}

    def op_hold(self, call: str, **_: Any) -> dict[str, Any]:
        peer, theirs = self._call(call)
        peer.post("held", call=theirs, direction="sendonly")
        return {"code": 200}

    def op_retrieve(self, call: str, **_: Any) -> dict[str, Any]:
        peer, theirs = self._call(call)
        peer.post("retrieved", call=theirs, direction="sendrecv")
        return {"code": 200}

    def op_dtmf(self, call: str, digits: str, **_: Any) -> dict[str, Any]:
        peer, theirs = self._call(call)
        for digit in digits:
            peer.post("dtmf", call=theirs, digit=digit, method="rfc2833")
        return {"sent": digits}
