"""The graph engine: one thread per instance walking its chains (spec §4).

The engine only talks to agents through ``request``/events, so it imports nothing from
pytest and nothing from pjsua2.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from .. import schema
from ..agent.client import AgentCrashed, AgentError
from ..graph import Graph, Step
from .events import ActionLogEvent, ExecutionEvent, Listener, NodeStateEvent, ScenarioStateEvent
from .mailbox import AgentDied, Event, Interrupted, Mailbox
from .result import Failure, NodeRun, ScenarioResult

LOOPBACK = "127.0.0.1"


class AgentLike(Protocol):
    name: str
    pid: int
    sip_port: int | None

    @property
    def alive(self) -> bool: ...
    def request(self, op: str, timeout: float = 5.0, **args: Any) -> dict[str, Any]: ...
    def send(self, op: str, **args: Any) -> Any: ...
    def set_event_sink(self, sink: Callable[[dict[str, Any]], None] | None) -> None: ...
    def stderr_tail(self, n: int = 20) -> list[str]: ...


class AgentProvider(Protocol):
    def acquire(self, count: int) -> Sequence[AgentLike]: ...
    def release(self, agent: AgentLike, healthy: bool) -> None: ...


@dataclass(frozen=True)
class EngineSettings:
    event_timeout_ms: float = 10_000  # nodes without their own ``timeout``
    scenario_timeout_ms: float = 60_000  # files without their own ``timeout``
    request_timeout_s: float = 5.0  # an agent must answer a request within this


class StepFailed(Exception):
    def __init__(self, reason: str, expected: str | None = None, actual: str | None = None,
                 detail: Sequence[str] = ()) -> None:
        self.reason, self.expected, self.actual, self.detail = reason, expected, actual, tuple(detail)
        super().__init__(reason)


class ScenarioRun:
    """One execution of a graph. ``run()`` blocks, cleans up, and returns the result."""

    def __init__(self, graph: Graph, agents: AgentProvider, settings: EngineSettings | None = None,
                 listener: Listener | None = None, peers: dict[str, str] | None = None) -> None:
        self.graph = graph
        self.peers = dict(peers or {})  # extra targets: a name or dn -> sip URI outside the graph
        self.provider = agents
        self.settings = settings or EngineSettings()
        self.listener = listener
        self.result = ScenarioResult(name=graph.name, path=str(graph.path))
        for step in graph.steps.values():
            self.result.nodes[step.id] = NodeRun(step.id, step.instance, step.chain, step.kind,
                                                 step.name, step.call_id)
        self._abort = threading.Event()
        self._lock = threading.RLock()  # result, failure and listener calls
        self._t0 = time.monotonic()
        self._agents: dict[str, AgentLike] = {}
        self._mailboxes: dict[str, Mailbox] = {}
        self._uris: dict[str, str] = {}  # dn and instance id -> sip URI
        self._current: dict[str, str] = {}  # instance -> node acting on it now
        self._errors: list[BaseException] = []
        self._stopped = False

    # -- public --------------------------------------------------------------------------

    def run(self) -> ScenarioResult:
        self._scenario_state("running")
        threads: list[threading.Thread] = []
        try:
            self._prepare()
            for inst in self.graph.instances.values():
                if inst.starts:
                    t = threading.Thread(target=self._chain_thread, args=(inst.id,),
                                         name=f"sipflow-{self.graph.name}-{inst.id}", daemon=True)
                    threads.append(t)
                    t.start()
            self._join(threads)
        except BaseException as exc:  # agent start failure, pytest-timeout, Ctrl-C
            if isinstance(exc, StepFailed):
                self._fail(Failure(exc.reason, detail=exc.detail))
            else:  # stopped from outside: name the node it was stuck on
                self._stopped = True
                self._fail(self._stuck_failure(f"the run was stopped ({str(exc) or type(exc).__name__})"))
            self._join(threads, deadline=False)
            self._finish()
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            return self.result
        self._finish()
        if self._errors:
            raise self._errors[0]
        return self.result

    # -- set-up / tear-down --------------------------------------------------------------

    def _prepare(self) -> None:
        instances = list(self.graph.instances.values())
        try:
            agents = list(self.provider.acquire(len(instances)))
        except Exception as exc:
            raise StepFailed(f"could not start SIP agents: {exc}") from exc
        for inst, agent in zip(instances, agents):
            self._agents[inst.id] = agent
            box = Mailbox(inst.id, self._abort)
            self._mailboxes[inst.id] = box
            agent.set_event_sink(self._sink(inst.id, box))
        configures = {}
        for inst in instances:  # every agent configures at once
            agent, data = self._agents[inst.id], inst.data
            try:
                configures[inst.id] = agent.send(
                    "configure", dn=data.dn or inst.id, display=data.label or inst.id,
                    codecs=list(data.codecs), auto_ringing=data.auto_ringing)
            except AgentError as exc:
                raise StepFailed(f"the agent of instance {inst.id!r} is gone: {exc}") from exc
        for inst in instances:
            agent = self._agents[inst.id]
            try:
                configures[inst.id].wait(self.settings.request_timeout_s)
            except (AgentError, TimeoutError) as exc:
                raise StepFailed(f"could not configure the agent of instance {inst.id!r}: {exc}",
                                 detail=agent.stderr_tail()) from exc
            dn = inst.data.dn or inst.id
            uri = f"sip:{dn}@{LOOPBACK}:{agent.sip_port}"
            self._uris[inst.id] = uri
            if inst.data.dn:
                self._uris.setdefault(f"dn:{inst.data.dn}", uri)
            self._log(None, inst.id, f"agent {agent.name} (pid {agent.pid}) ready as {uri}")

    def _finish(self) -> None:
        for agent in self._agents.values():
            agent.set_event_sink(None)
        healthy = dict.fromkeys(self._agents, False)
        resets = {}
        for inst_id, agent in self._agents.items():  # all agents reset at once
            try:
                resets[inst_id] = agent.send("reset")
            except AgentError:
                pass
        for inst_id, reply in resets.items():
            try:
                reply.wait(self.settings.request_timeout_s)
                healthy[inst_id] = True
            except (AgentError, TimeoutError):
                pass
        for inst_id, agent in self._agents.items():
            self.provider.release(agent, healthy[inst_id])
        self._agents.clear()
        with self._lock:
            for node in self.result.nodes.values():
                if node.state == "pending":
                    self._set_state(node, "skipped")
            if self._stopped:
                state = "stopped"
            elif self.result.failure is not None:
                state = "failed"
            else:
                state = "completed"
            self.result.state = state
            self.result.duration = time.monotonic() - self._t0
        self._scenario_state(state, self.result.failure.reason if self.result.failure else "")

    def _join(self, threads: list[threading.Thread], deadline: bool = True) -> None:
        limit_ms = self.graph.timeout if self.graph.timeout is not None \
            else self.settings.scenario_timeout_ms
        end = self._t0 + limit_ms / 1000.0
        for t in threads:
            while t.is_alive():
                if deadline and time.monotonic() >= end:
                    self._fail(self._stuck_failure(f"scenario deadline of {limit_ms:g} ms exceeded"))
                    deadline = False
                t.join(0.05 if not deadline else max(0.0, min(0.5, end - time.monotonic())))

    def _stuck_failure(self, why: str) -> Failure:
        with self._lock:
            running = [n for n in self.result.nodes.values() if n.state == "running"]
        if not running:
            return Failure(why)
        stuck = running[0]
        others = [n.id for n in running[1:]]
        return Failure(f"{why} while node {stuck.id!r} was running"
                       + (f" (also running: {', '.join(others)})" if others else ""),
                       node=stuck.id, instance=stuck.instance, name=stuck.name)

    def _abort_all(self) -> None:
        self._abort.set()
        for box in self._mailboxes.values():
            box.wake()

    def _fail(self, failure: Failure) -> None:
        with self._lock:
            if self.result.failure is None:
                self.result.failure = failure
        self._abort_all()

    # -- events --------------------------------------------------------------------------

    def _emit(self, event: ExecutionEvent) -> None:
        with self._lock:
            self.result.events.append(event)
            if self.listener is not None:
                try:
                    self.listener(event)
                except BaseException as exc:  # a user's hook broke: report it, stop the run
                    self._errors.append(exc)
                    self._abort.set()

    def _scenario_state(self, state: str, message: str = "") -> None:
        self._emit(ScenarioStateEvent(self.graph.name, state, time.time(), message))

    def _log(self, node: str | None, instance: str, message: str, level: str = "info",
             sip: str | None = None) -> None:
        self._emit(ActionLogEvent(self.graph.name, node, instance, message, level, time.time(), sip))

    def _set_state(self, node: NodeRun, state: str) -> None:
        with self._lock:
            previous, node.state = node.state, state
            now = time.monotonic() - self._t0
            if state == "running":
                node.started = now
            elif previous == "running":
                node.ended = now
            self._emit(NodeStateEvent(self.graph.name, node.id, node.instance, previous, state,
                                      time.time()))

    def _sink(self, instance: str, box: Mailbox) -> Callable[[dict[str, Any]], None]:
        def sink(raw: dict[str, Any]) -> None:
            if raw.get("event") == "sip":
                record = dict(raw, instance=instance)
                with self._lock:
                    self.result.sip_messages.append(record)
                    node = self._current.get(instance)
                summary = str(raw.get("summary", ""))
                arrow = "->" if raw.get("dir") == "tx" else "<-"
                self._log(node, instance, f"{arrow} {summary}", "sip", sip=summary)
                return
            box.post(raw)
        return sink

    # -- chains --------------------------------------------------------------------------

    def _chain_thread(self, instance: str) -> None:
        try:
            self._run_chains(instance)
        except BaseException as exc:  # an engine bug: surface it in the test thread
            with self._lock:
                self._errors.append(exc)
            self._fail(Failure(f"internal error in the thread of instance {instance!r}: {exc!r}"))

    def _run_chains(self, instance: str) -> None:
        path = self.result.paths.setdefault(instance, [])
        for start in self.graph.instances[instance].starts:
            node_id: str | None = start
            while node_id is not None:
                if self._abort.is_set():
                    return
                step = self.graph.steps[node_id]
                path.append(node_id)
                ok = self._run_step(step)
                if ok is None:  # cancelled
                    return
                if ok:
                    node_id = step.success
                elif step.failure is not None:
                    node_id = step.failure
                else:
                    return

    def _run_step(self, step: Step) -> bool | None:
        node = self.result.nodes[step.id]
        self._set_state(node, "running")
        with self._lock:
            self._current[step.instance] = step.id
        try:
            message = self._execute(step)
        except Interrupted:
            self._set_state(node, "cancelled")
            return None
        except StepFailed as exc:
            node.message = exc.reason
            self._log(step.id, step.instance, exc.reason, "error")
            self._set_state(node, "failed")
            if step.failure is None:
                self._fail(Failure(exc.reason, step.id, step.instance, step.name,
                                   exc.expected, exc.actual, exc.detail))
            return False
        node.message = message
        if message:
            self._log(step.id, step.instance, message)
        self._set_state(node, "completed")
        return True

    # -- nodes ---------------------------------------------------------------------------

    def _execute(self, step: Step) -> str:
        handler = getattr(self, f"_do_{step.name}", None)
        if handler is None:
            raise StepFailed(f"{step.name} is not supported yet by this version of pytest-sipflow")
        try:
            return handler(step, step.data)
        except AgentDied as exc:
            raise self._died(step, exc.returncode, exc.stderr) from None
        except AgentCrashed as exc:
            raise self._died(step, exc.returncode, exc.stderr_tail) from None

    def _died(self, step: Step, rc: int | None, stderr: Sequence[str]) -> StepFailed:
        agent = self._agents.get(step.instance)
        lines = list(stderr) or (agent.stderr_tail() if agent else [])
        return StepFailed(f"the SIP agent of instance {step.instance!r} died (exit code {rc})",
                          detail=[f"agent stderr: {line}" for line in lines[-10:]])

    def _timeout(self, step: Step) -> float:
        ms = step.data.timeout if step.data.timeout is not None else self.settings.event_timeout_ms
        return ms / 1000.0

    def _request(self, step: Step, op: str, timeout: float | None = None, **args: Any) -> dict[str, Any]:
        reply = self._send(step, op, **args)
        return self._reply(step, op, reply, timeout or self.settings.request_timeout_s)

    def _transaction(self, step: Step, op: str, **args: Any) -> dict[str, Any]:
        """An op the agent answers when the peer has (re-INVITE, REFER): bounded by the node."""
        limit = self._timeout(step)
        reply = self._send(step, op, timeout=limit, **args)
        return self._reply(step, op, reply, limit + self.settings.request_timeout_s)

    def _send(self, step: Step, op: str, **args: Any) -> Any:
        return self._agents[step.instance].send(op, **args)  # AgentCrashed: handled in _execute

    def _reply(self, step: Step, op: str, reply: Any, timeout: float) -> dict[str, Any]:
        try:
            return reply.wait(timeout)
        except AgentCrashed:
            raise
        except AgentError as exc:
            raise StepFailed(f"{step.name} failed: {exc}") from None
        except TimeoutError:
            raise StepFailed(f"the agent of instance {step.instance!r} did not answer "
                             f"{op!r} in time") from None

    def _box(self, step: Step) -> Mailbox:
        return self._mailboxes[step.instance]

    def _handle(self, step: Step, key: str | None = None, live: bool = True) -> str:
        key = key or step.call_id
        box = self._box(step)
        handle = box.handle(key)
        if handle is None or (live and not box.is_live(handle)):
            calls = box.live_keys()
            state = "no call" if handle is None else "no active call (it has ended)"
            raise StepFailed(
                f"{state} under callId {key!r} on instance {step.instance!r}",
                expected=f"a live call under callId {key!r}",
                actual=f"live calls: {', '.join(map(repr, calls))}" if calls else "no live call")
        return handle

    def _recent(self, step: Step) -> str:
        events = self._box(step).recent()
        return "; ".join(e.describe() for e in events) if events else "nothing"

    def _wait_call(self, step: Step, handle: str, types: set[str], what: str) -> Event:
        ev = self._box(step).take(lambda e: e.call == handle and e.type in types,
                                  self._timeout(step), consume=False)
        if ev is None:
            raise StepFailed(f"{what} within {self._timeout(step) * 1000:g} ms", expected=what,
                             actual=f"last events: {self._recent(step)}")
        return ev

    def _target(self, step: Step, target: str) -> str:
        if target.startswith(("sip:", "sips:")):
            return target
        for key in (f"dn:{target}", target):
            if key in self._uris:
                return self._uris[key]
        if target in self.peers:
            return self.peers[target]
        if "@" in target:
            return f"sip:{target}"
        raise StepFailed(f"bad target {target!r}: not a sip: URI and no instance has this dn",
                         expected="a dn of this scenario or a sip: URI", actual=repr(target))

    def _free_key(self, step: Step) -> Mailbox:
        """The node's mailbox, once sure its callId holds no live call to overwrite."""
        box = self._box(step)
        old = box.handle(step.call_id)
        if old is not None and box.is_live(old):
            raise StepFailed(f"callId {step.call_id!r} already holds a live call on instance "
                             f"{step.instance!r}; use another callId")
        return box

    # commands

    def _do_MakeCall(self, step: Step, data: schema.MakeCall) -> str:
        box = self._free_key(step)
        uri = self._target(step, data.target_uri)
        self._log(step.id, step.instance, f"calling {uri}")
        handle = self._request(step, "make_call", target=uri, headers=dict(data.headers))["call"]
        box.bind(handle, step.call_id)
        ev = box.take(lambda e: e.call == handle and e.type in ("confirmed", "disconnected"),
                      self._timeout(step), consume=False)
        if ev is None:
            raise StepFailed(f"no final response within {self._timeout(step) * 1000:g} ms",
                             expected="2xx final response", actual=f"last events: {self._recent(step)}")
        if ev.type == "disconnected":
            status = f"{ev.raw.get('code')} {ev.raw.get('reason', '')}".strip()
            raise StepFailed(f"call to {uri} failed: {status}", expected="2xx final response",
                             actual=status)
        return f"call to {uri} answered"

    def _do_Answer(self, step: Step, data: schema.Answer) -> str:
        handle = self._handle(step)
        self._request(step, "answer", call=handle, code=data.status_code)
        ev = self._wait_call(step, handle, {"confirmed", "disconnected"}, "ACK for the 2xx")
        if ev.type == "disconnected":
            raise StepFailed("the call ended before it was confirmed", expected="ACK",
                             actual=ev.describe())
        return f"answered with {data.status_code}"

    def _do_Response(self, step: Step, data: schema.Response) -> str:
        handle = self._handle(step)
        args: dict[str, Any] = {"call": handle, "code": data.status_code}
        if data.reason:
            args["reason"] = data.reason
        self._request(step, "respond", **args)
        return f"responded {data.status_code}{' ' + data.reason if data.reason else ''}"

    def _do_Release(self, step: Step, data: schema.Release) -> str:
        handle = self._handle(step, live=False)
        box = self._box(step)
        if not box.is_live(handle):
            self._log(step.id, step.instance, f"call {step.call_id!r} had already ended", "warning")
            return "nothing to release"
        args: dict[str, Any] = {"call": handle}
        if data.status_code is not None:
            args["code"] = data.status_code
        reply = self._request(step, "hangup", **args)
        if reply.get("already_ended"):
            self._log(step.id, step.instance, f"call {step.call_id!r} had already ended", "warning")
            return "nothing to release"
        self._wait_call(step, handle, {"disconnected"}, "the call to end")
        return f"call {step.call_id!r} released"

    def _do_Hold(self, step: Step, data: schema.Hold) -> str:
        handle = self._handle(step)
        self._transaction(step, "hold", call=handle)
        return f"call {step.call_id!r} put on hold"

    def _do_Retrieve(self, step: Step, data: schema.Retrieve) -> str:
        handle = self._handle(step)
        self._transaction(step, "retrieve", call=handle)
        return f"call {step.call_id!r} retrieved"

    def _do_BlindTransfer(self, step: Step, data: schema.BlindTransfer) -> str:
        handle = self._handle(step)
        if data.target_uri:
            target = self._target(step, data.target_uri)
        elif data.target_host and (self.graph.instances[step.instance].data.pbx_host
                                   or f"dn:{data.target_user}" not in self._uris):
            target = f"sip:{data.target_user}@{data.target_host}"
        else:  # local mode: the editor's targetUser + PBX targetHost is a dn of this scenario
            target = self._target(step, data.target_user or "")
        self._transaction(step, "transfer", call=handle, target=target)
        return f"call {step.call_id!r} transferred to {target} (REFER accepted)"

    def _do_MuteTransfer(self, step: Step, data: schema.MuteTransfer) -> str:
        primary = self._handle(step, data.primary_call_id)
        consult = self._handle(step, data.consult_call_id)
        self._transaction(step, "transfer_attended", call=primary,
                      dest_call=consult)
        ev = self._box(step).take(
            lambda e: e.call == primary and e.type == "notify" and bool(e.raw.get("final")),
            self._timeout(step))
        if ev is None:
            raise StepFailed(f"no final NOTIFY within {self._timeout(step) * 1000:g} ms",
                             expected="final NOTIFY 2xx", actual=f"last events: {self._recent(step)}")
        code = int(ev.raw.get("code") or 0)
        if code >= 300:
            raise StepFailed(f"transfer failed: NOTIFY {code} {ev.raw.get('reason', '')}".strip(),
                             expected="final NOTIFY 2xx", actual=f"NOTIFY {code}")
        for handle in (primary, consult):
            if self._box(step).is_live(handle):
                self._request(step, "hangup", call=handle)
                self._wait_call(step, handle, {"disconnected"}, "the transferred leg to end")
        return (f"calls {data.primary_call_id!r} and {data.consult_call_id!r} joined "
                f"(NOTIFY {code}); both legs released")

    def _do_SendDTMF(self, step: Step, data: schema.SendDTMF) -> str:
        handle = self._handle(step)
        budget = len(data.digits) * (data.interval_ms + 300) / 1000.0 + self.settings.request_timeout_s
        self._request(step, "dtmf", timeout=budget, call=handle, digits=data.digits,
                      method=data.method, interval_ms=int(data.interval_ms))
        return f"sent DTMF {data.digits!r} by {data.method}"

    def _do_PlayAudio(self, step: Step, data: schema.PlayAudio) -> str:
        handle = self._handle(step)
        path = (Path(self.graph.path).parent / data.file_path).resolve()
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise StepFailed(f"cannot play {path}: {exc.strerror or exc}",
                             expected="a readable WAV file", actual=str(path)) from None
        reply = self._request(step, "play", call=handle, path=str(path))
        play = reply.get("play")
        ev = self._box(step).take(lambda e: e.type == "play_done" and e.call == handle
                                  and e.raw.get("play", play) == play, self._timeout(step))
        if ev is None:
            raise StepFailed(f"{path.name} did not finish playing within "
                             f"{self._timeout(step) * 1000:g} ms", expected="end of file",
                             actual=f"last events: {self._recent(step)}")
        return f"played {path.name}"

    # events

    def _do_TIMEOUT(self, step: Step, data: schema.Timeout) -> str:
        if self._abort.wait(self._timeout(step)):
            raise Interrupted()
        return ""

    def _do_INCOMING(self, step: Step, data: schema.Incoming) -> str:
        box = self._free_key(step)
        ev = box.take_incoming(step.call_id, self._timeout(step))
        if ev is None:
            raise StepFailed(f"no incoming call within {self._timeout(step) * 1000:g} ms",
                             expected="INCOMING", actual=f"last events: {self._recent(step)}")
        return f"incoming call from {ev.raw.get('from', '?')}"

    def _wait_event(self, step: Step, etype: str, label: str) -> Event:
        ev = self._box(step).take(lambda e: e.key == step.call_id and e.type == etype,
                                  self._timeout(step))
        if ev is None:
            raise StepFailed(f"no {label} on callId {step.call_id!r} within "
                             f"{self._timeout(step) * 1000:g} ms", expected=label,
                             actual=f"last events: {self._recent(step)}")
        return ev

    def _do_RINGING(self, step: Step, data: schema.Ringing) -> str:
        ev = self._wait_event(step, "ringing", "RINGING")
        return f"ringing ({ev.raw.get('code', 180)})"

    def _do_DISCONNECTED(self, step: Step, data: schema.Disconnected) -> str:
        ev = self._wait_event(step, "disconnected", "DISCONNECTED")
        return f"disconnected ({ev.raw.get('code')} {ev.raw.get('reason', '')})".strip()

    def _do_DTMFReceived(self, step: Step, data: schema.DTMFReceived) -> str:
        expected = data.expected
        count = len(expected) if expected else 1
        deadline = time.monotonic() + self._timeout(step)
        got = ""
        for i in range(count):
            ev = self._box(step).take(lambda e: e.key == step.call_id and e.type == "dtmf",
                                      max(0.0, deadline - time.monotonic()))
            if ev is None:
                raise StepFailed(f"no DTMF on callId {step.call_id!r} within "
                                 f"{self._timeout(step) * 1000:g} ms" + (f" after {got!r}" if got else ""),
                                 expected=expected or "a DTMF digit", actual=got or "no digit")
            got += str(ev.raw.get("digit", "?"))
            if expected and got[i] != expected[i]:
                raise StepFailed(f"wrong DTMF digit {got[i]!r} at position {i + 1}",
                                 expected=expected, actual=got)
        return f"received DTMF {got!r}"

    def _do_HELD(self, step: Step, data: schema.Held) -> str:
        self._wait_event(step, "held", "HELD")
        return f"call {step.call_id!r} held by the peer"

    def _do_RETRIEVED(self, step: Step, data: schema.Retrieved) -> str:
        self._wait_event(step, "retrieved", "RETRIEVED")
        return f"call {step.call_id!r} retrieved by the peer"

    def _do_TRANSFERRED(self, step: Step, data: schema.Transferred) -> str:
        ev = self._wait_event(step, "transferred", "TRANSFERRED")
        return f"transferred to {ev.raw.get('target', '?')}; following the REFER"

    def _do_NOTIFY(self, step: Step, data: schema.Notify) -> str:
        want = data.status_code
        deadline = time.monotonic() + self._timeout(step)
        seen: list[str] = []
        while True:
            ev = self._box(step).take(lambda e: e.key == step.call_id and e.type == "notify",
                                      max(0.0, deadline - time.monotonic()))
            if ev is None:
                raise StepFailed(f"no NOTIFY{f' {want}' if want else ''} on callId "
                                 f"{step.call_id!r} within {self._timeout(step) * 1000:g} ms",
                                 expected=f"NOTIFY {want}" if want else "NOTIFY",
                                 actual=", ".join(seen) or "no NOTIFY")
            code = int(ev.raw.get("code") or 0)
            reason = str(ev.raw.get("reason") or "")
            if code == 100 and reason == "Accepted" and not ev.raw.get("final"):
                continue  # pjsua's report of the REFER's own 2xx: no NOTIFY has arrived yet
            seen.append(f"NOTIFY {code}")
            if want is None or code == want:
                return f"NOTIFY {code} {reason}".strip()
            if ev.raw.get("final"):
                raise StepFailed(f"transfer ended with NOTIFY {code}", expected=f"NOTIFY {want}",
                                 actual=", ".join(seen))


def run_scenario(graph: Graph, agents: AgentProvider, settings: EngineSettings | None = None,
                 listener: Listener | None = None, peers: dict[str, str] | None = None,
                 ) -> ScenarioResult:
    return ScenarioRun(graph, agents, settings, listener, peers).run()

