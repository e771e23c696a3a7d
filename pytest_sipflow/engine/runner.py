"""The graph engine: one thread per instance walking its chains (spec §4).

The engine talks to agents only through the call core (``core.phone``), so it imports
nothing from pytest, pjsua2 or the reports. Events for listeners (the pytest hooks) are
queued and delivered on the thread that called :meth:`ScenarioRun.run`, never on an agent
reader thread and never under the engine's lock.
"""

from __future__ import annotations

import queue
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from ..core.account import Account, account_for
from ..core.failures import AgentDied, StepFailed
from ..core.lifecycle import send_configure, send_reset, wait_configured, wait_reset
from ..core.mailbox import Interrupted, Mailbox
from ..core.phone import AgentLike, Phone
from ..core.settings import EngineSettings
from ..core.targets import Directory, resolve
from ..errors import SipflowWarning
from ..format.graph import Graph, Step
from .events import ActionLogEvent, ExecutionEvent, Listener, NodeStateEvent, ScenarioStateEvent
from .nodes import HANDLERS, NodeContext, run_absent
from .result import Failure, NodeRun, ScenarioResult

__all__ = ["AgentProvider", "EngineSettings", "ScenarioRun", "run_scenario"]


class AgentProvider(Protocol):
    def acquire(self, count: int) -> Sequence[AgentLike]: ...
    def release(self, agent: AgentLike, healthy: bool) -> None: ...


class _ChainDone:
    """Queued by an instance thread when it ends, so the run's thread wakes at once."""


_DONE = _ChainDone()


class ScenarioRun:
    """One execution of a graph. ``run()`` blocks, cleans up, and returns the result."""

    def __init__(self, graph: Graph, agents: AgentProvider, settings: EngineSettings | None = None,
                 listener: Listener | None = None, peers: dict[str, str] | None = None,
                 result_type: type[ScenarioResult] = ScenarioResult) -> None:
        self.graph = graph
        self.peers = dict(peers or {})  # extra targets: a name or dn -> sip URI outside the graph
        self.provider = agents
        self.settings = settings or EngineSettings()
        self.listener = listener
        self.result = result_type(name=graph.name, path=str(graph.path))
        for step in graph.steps.values():
            self.result.nodes[step.id] = NodeRun(step.id, step.instance, step.chain, step.kind,
                                                 step.name, step.call_id)
        self._abort = threading.Event()
        self._lock = threading.RLock()  # result and failure; never held while a listener runs
        self._queue: queue.SimpleQueue[ExecutionEvent | _ChainDone] = queue.SimpleQueue()
        self._t0 = time.monotonic()  # reset when every instance is ready (§4.8)
        self._agents: dict[str, AgentLike] = {}
        self._phones: dict[str, Phone] = {}
        self._directory = Directory()
        self._names: dict[str, str] = {}  # URI or dn -> instance (media checks name the peer)
        self._accounts: dict[str, Account] = {}  # real-mode instances
        self._current: dict[str, str] = {}  # instance -> node acting on it now
        self._errors: list[BaseException] = []
        self._stopped = False

    # -- public --------------------------------------------------------------------------

    def run(self) -> ScenarioResult:
        self._scenario_state("running")
        threads: list[threading.Thread] = []
        try:
            self._prepare()
            self._t0 = time.monotonic()  # the deadline counts the scenario, not the set-up
            for inst in self.graph.instances.values():
                if inst.starts:
                    t = threading.Thread(target=self._chain_thread, args=(inst.id,),
                                         name=f"sipflow-{self.graph.name}-{inst.id}", daemon=True)
                    threads.append(t)
                    t.start()
            self._wait(threads, deadline=True)
        except BaseException as exc:  # set-up failure, pytest-timeout, Ctrl-C
            if isinstance(exc, StepFailed):
                self._fail(Failure(exc.reason, expected=exc.expected, actual=exc.actual,
                                   detail=exc.detail))
            else:  # stopped from outside: name the node it was stuck on
                self._stopped = True
                self._fail(self._stuck_failure(f"the run was stopped ({str(exc) or type(exc).__name__})"))
            self._wait(threads, deadline=False)
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
        for inst, agent in zip(instances, paired(instances, agents)):
            self._agents[inst.id] = agent
            box = Mailbox(inst.id, self._abort)
            phone = self._phones[inst.id] = Phone(inst.id, agent, box,
                                                  self.settings.request_timeout_s)
            phone.deliver = self._sink(inst.id, box)
            agent.set_event_sink(phone.deliver)
        replies = {}
        watched = media_instances(self.graph)
        for inst in instances:  # every agent configures (and registers) at once
            data = inst.data
            account = account_for(data.dn or inst.id, data, self.settings)
            if account is not None:
                self._accounts[inst.id] = account
            try:
                replies[inst.id] = send_configure(
                    self._phones[inst.id], self.settings, account, dn=data.dn or inst.id,
                    display=data.label or inst.id, codecs=data.codecs,
                    auto_ringing=data.auto_ringing, media_stats=inst.id in watched,
                    srtp=data.srtp, srtp_keying=data.srtp_keying)
            except AgentDied as exc:
                raise self._died(inst.id, exc) from None
        for inst in instances:
            phone = self._phones[inst.id]
            account = self._accounts.get(inst.id)
            try:
                reply = wait_configured(phone, replies[inst.id], self.settings, account)
            except AgentDied as exc:
                raise self._died(inst.id, exc) from None
            dn = inst.data.dn or inst.id
            if account is None:
                uri = f"sip:{dn}@{self.settings.bind_address}:{phone.agent.sip_port}"
                ready = f"ready as {uri}"
            else:
                uri = account.aor
                ready = (f"ready as {uri} via {account.server} over {account.transport}"
                         + (f", registered ({reply.get('code')} {reply.get('reason', '')})".rstrip()
                            if account.register else ", not registered"))
            self._directory.add(uri, inst.data.dn, inst.id)
            self._names.update({uri: inst.id, dn: inst.id})
            self.result.instances[inst.id] = {
                "uri": uri, "address": f"{self.settings.bind_address}:{phone.agent.sip_port}"}
            self._log(None, inst.id, f"agent {phone.agent.name} (pid {phone.agent.pid}) {ready}")
        for name, uri in self.peers.items():
            self._directory.add(uri, name)

    def _finish(self) -> None:
        self.result.call_keys = {i: p.box.bound_keys() for i, p in self._phones.items()}
        for i, p in self._phones.items():
            if p.media:
                keys = self.result.call_keys.get(i, {})
                self.result.media[i] = {keys.get(h, h): s for h, s in dict(p.media).items()}
        self.result.recordings = [r.as_dict() for p in self._phones.values()
                                  for r in p.recordings]
        if self.result.failure is not None:  # the failure's ladder and trace need it all
            self._fetch_traces()
        for agent in self._agents.values():
            agent.set_event_sink(None)
        healthy = dict.fromkeys(self._agents, False)
        resets = {i: send_reset(p, self.settings, keep_account=i not in self._accounts)
                  for i, p in self._phones.items()}  # at once
        late: list[str] = []
        for inst_id, reply in resets.items():
            healthy[inst_id], trouble = wait_reset(self._phones[inst_id], reply, self.settings)
            if trouble:  # the test is over: a failed un-REGISTER is worth a warning only
                message = f"instance {inst_id!r}: un-REGISTER at clean-up failed: {trouble}"
                self._log(None, inst_id, message, "warning")
                late.append(message)
        for inst_id, agent in self._agents.items():
            # An instance's own client certificate stays with the agent's TLS connections:
            # such an agent is never lent to another instance.
            own_cert = getattr(self._accounts.get(inst_id), "tls_cert", None)
            self.provider.release(agent, healthy[inst_id] and not own_cert)
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
        self._deliver()
        # Warned last: under -W error a warning raises, and the agents must be back by then.
        for message in late:
            warnings.warn(message, SipflowWarning, stacklevel=1)

    def _wait(self, threads: list[threading.Thread], deadline: bool) -> None:
        """Deliver queued events until every chain has ended; enforce the deadline."""
        limit_ms = self.graph.timeout if self.graph.timeout is not None \
            else self.settings.scenario_timeout_ms
        end = self._t0 + limit_ms / 1000.0
        while True:
            self._deliver()
            if not any(t.is_alive() for t in threads):
                break
            if deadline and time.monotonic() >= end:
                self._fail(self._stuck_failure(f"scenario deadline of {limit_ms:g} ms exceeded"))
                deadline = False
            wait = max(0.0, min(0.5, end - time.monotonic())) if deadline else 0.5
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                continue
            if not isinstance(item, _ChainDone):
                self._notify(item)
        for t in threads:
            t.join()
        self._deliver()

    def _stuck_failure(self, why: str) -> Failure:
        with self._lock:
            running = sorted((n for n in self.result.nodes.values() if n.state == "running"),
                             key=lambda n: n.started if n.started is not None else 0.0)
        if not running:
            return Failure(why)
        stuck = running[0]  # the one running longest
        others = [n.id for n in running[1:]]
        return Failure(f"{why} while node {stuck.id!r} was running"
                       + (f" (also running: {', '.join(others)})" if others else ""),
                       node=stuck.id, instance=stuck.instance, name=stuck.name)

    def _fail(self, failure: Failure) -> None:
        with self._lock:
            if self.result.failure is None:
                self.result.failure = failure
        self._abort.set()
        for phone in self._phones.values():
            phone.box.wake()

    def _fetch_traces(self) -> None:
        """The messages the agents kept (``keep_trace``); a dead agent's are lost."""
        for phone in self._phones.values():
            try:
                phone.records()
            except (AgentDied, StepFailed):
                pass

    # -- events --------------------------------------------------------------------------

    def _emit(self, event: ExecutionEvent) -> None:
        with self._lock:  # one order for the result and for the listener
            self.result.events.append(event)
            if self.listener is not None:
                self._queue.put(event)

    def _deliver(self) -> None:
        """Hand queued events to the listener; only ever on the thread running ``run()``."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if not isinstance(item, _ChainDone):
                self._notify(item)

    def _notify(self, event: ExecutionEvent) -> None:
        if self.listener is None:
            return
        try:
            self.listener(event)
        except BaseException as exc:  # a user's hook broke: report it, stop the run
            self._errors.append(exc)
            self._abort.set()

    def _scenario_state(self, state: str, message: str = "") -> None:
        self._emit(ScenarioStateEvent(self.graph.name, state, time.time(), message))

    def _log(self, node: str | None, instance: str, message: str, level: str = "info",
             sip: str | None = None, direction: str | None = None,
             text: str | None = None) -> None:
        self._emit(ActionLogEvent(self.graph.name, node, instance, message, level, time.time(), sip,
                                  direction, text))

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
        """Runs on the agent's reader thread: store and queue, nothing else."""
        def sink(raw: dict[str, Any]) -> None:
            if raw.get("event") == "sip":
                with self._lock:
                    self.result.sip_messages.append(dict(raw, instance=instance))
                    node = self._current.get(instance)
                summary = str(raw.get("summary", ""))
                arrow = "->" if raw.get("dir") == "tx" else "<-"
                self._log(node, instance, f"{arrow} {summary}", "sip", sip=summary,
                          direction="sent" if raw.get("dir") == "tx" else "received",
                          text=raw.get("text"))
            elif raw.get("event") == "disconnected" and "media" in raw:
                self._phones[instance].media[str(raw.get("call"))] = raw["media"]
            box.post(raw)  # sip records too: header checks read the instance's trace
        return sink

    # -- chains --------------------------------------------------------------------------

    def _chain_thread(self, instance: str) -> None:
        try:
            self._run_chains(instance)
        except BaseException as exc:  # an engine bug: surface it in the test thread
            with self._lock:
                self._errors.append(exc)
            self._fail(Failure(f"internal error in the thread of instance {instance!r}: {exc!r}"))
        finally:
            self._queue.put(_DONE)

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

    def _execute(self, step: Step) -> str:
        handler = HANDLERS[type(step.data)]
        if getattr(step.data, "absent", False):
            handler = run_absent
        try:
            return handler(self._context(step), step.data)
        except AgentDied as exc:
            raise self._died(step.instance, exc) from None

    def _context(self, step: Step) -> NodeContext:
        ms = step.data.timeout if step.data.timeout is not None else self.settings.event_timeout_ms
        account = self._accounts.get(step.instance)
        domain = account.domain if account is not None else None
        return NodeContext(
            step=step, phone=self._phones[step.instance], timeout=ms / 1000.0,
            resolve=lambda target: resolve(target, self._directory, domain),
            log=lambda message, level: self._log(step.id, step.instance, message, level),
            abort=self._abort, base=Path(self.graph.path).parent,
            account=account, names=self._names,
            record_dir=Path(self.settings.record_dir) if self.settings.record_dir else None)

    def _died(self, instance: str, exc: AgentDied) -> StepFailed:
        agent = self._agents.get(instance)
        lines = list(exc.stderr) or (agent.stderr_tail() if agent else [])
        return StepFailed(f"the SIP agent of instance {instance!r} died (exit code {exc.returncode})",
                          detail=[f"agent stderr: {line}" for line in lines[-10:]])


def paired(instances: Sequence[Any], agents: Sequence[AgentLike]) -> list[AgentLike]:
    """The agents in instance order, each instance given one left configured with its dn
    when there is one (its configure is then skipped)."""
    free = list(agents)
    chosen: list[AgentLike | None] = []
    for inst in instances:
        dn = inst.data.dn or inst.id
        match = next((a for a in free
                      if (getattr(a, "configured", None) or {}).get("dn") == dn), None)
        if match is not None:
            free.remove(match)
        chosen.append(match)
    return [a if a is not None else free.pop(0) for a in chosen]


def media_instances(graph: Graph) -> set[str]:
    """Instances whose agents must watch their calls' RTP: a node of theirs checks media."""
    return {s.instance for s in graph.steps.values()
            if getattr(s.data, "expect_media", None) is not None}


def run_scenario(graph: Graph, agents: AgentProvider, settings: EngineSettings | None = None,
                 listener: Listener | None = None, peers: dict[str, str] | None = None,
                 ) -> ScenarioResult:
    return ScenarioRun(graph, agents, settings, listener, peers).run()
