"""A pool of started SIP agents, reused between scenarios after a full reset.

Agents are forked from a fork server (a few ms each) and started all at once; a reset
costs one round trip. A dead or unhealthy agent is never reused: it is reaped and a fresh
one takes its place.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Sequence

from ..errors import AgentUnavailable
from .book import SOCKET_FREE_DELAY_S
from .client import Agent, AgentError
from .forkserver import ForkServer
from .ports import RTP_PORTS_PER_AGENT, PortPlan

START_TIMEOUT_S = 15.0
MAX_SPARES = 8
#: Idle agents kept beyond what the next item needs, at least; the rest are given back
#: (each idle agent is a process and its ports, however cheap it is while it sleeps).
KEEP_SPARES = 4
#: Spare sets of agents a fast suite rotates over besides the set in use: idle agents are
#: handed out oldest first, so each agent makes a quarter of the calls. pjsip frees a
#: call's sockets only 500 ms after it ends and its socket table holds 28 calls' worth
#: (``book.SocketBudget``): an agent in every basic call (~5 ms each) waited ~0.3 s
#: every 28 calls; one in every fourth stays under the limit up to ~170 scenarios/s.
SPARE_SETS = 3


def spares_for(need: int) -> int:
    """Idle agents kept warm beside the ``need`` a scenario takes, for rotation."""
    return min(SPARE_SETS * need, MAX_SPARES)


class AgentPool:
    def __init__(self, plan: PortPlan, python: str = sys.executable, name: str = "a",
                 fork: bool = True) -> None:
        self.plan = plan
        self.fork = fork  # False: every agent is a ``python -m pytest_sipflow.agent`` of its own
        self.name = name  # prefix of agent names, so threads show whose agent they serve
        self.python = python
        self._lock = threading.Lock()
        self._released = threading.Condition(self._lock)  # an agent became idle
        self._idle: list[Agent] = []
        self._busy: set[Agent] = set()
        self._used_ports: set[int] = set()
        self._handed_out: dict[Agent, float] = {}  # when each agent was last acquired
        self._cursor = plan.sip_first
        self._serial = 0
        self.started = 0  # agents ever started (for reports and benchmarks)
        self._warming: threading.Thread | None = None
        self._forks: ForkServer | None = None

    def start_fork_server(self) -> None:
        """Start the fork server now (it imports for ~0.2 s), e.g. while pytest collects."""
        if self.fork:
            self._fork_server()

    def _fork_server(self) -> ForkServer | None:
        if not self.fork:
            return None
        with self._lock:
            old = self._forks
            if old is not None and old.alive:
                return old
            self._forks = ForkServer(self.python)
            forks = self._forks
        if old is not None:
            old.close()  # it died: reap it
        return forks

    def prestart(self, count: int) -> None:
        """Start agents in the background, so the first scenario finds them ready.

        Starts the spare sets besides (``spares_for``): a fast suite rotates over them.
        """
        if self._warming is not None:
            return
        first = max(0, count - self.live_agents)
        spares = max(0, count + spares_for(count) - self.live_agents - first)
        if not first and not spares:
            return  # all there: no thread (``acquire`` asks after every fast reuse)

        def warm() -> None:
            try:
                for batch in (first, spares):  # the agents a scenario needs come back first
                    for agent in self._start_fresh(batch):
                        self.release(agent, True)
            except (AgentError, AgentUnavailable, TimeoutError):
                pass  # warming is best effort: the next acquire starts agents and reports why not

        self._warming = threading.Thread(target=warm, name="sipflow-prestart", daemon=True)
        self._warming.start()

    def _wait_warm(self, count: int | None = None) -> None:
        """Wait for warming to finish, or only until ``count`` idle agents are ready."""
        thread = self._warming
        if thread is None or thread is threading.current_thread():
            return
        with self._released:
            while count is not None and len(self._idle) < count and thread.is_alive():
                self._released.wait(0.05)
        if count is None or len(self._idle) < count:
            thread.join()
        if not thread.is_alive():
            self._warming = None

    def settle(self) -> None:
        """Wait until the agents being started in the background are up (or failed)."""
        self._wait_warm()

    def acquire(self, count: int) -> Sequence[Agent]:
        """``count`` started agents, the longest idle first. An agent handed out again
        within ``SOCKET_FREE_DELAY_S`` of its last use means a fast run (the Python API or
        the engine, which no ``prestart`` warmed): the spare sets are started then."""
        self._wait_warm(count)
        agents = self._acquire(count)
        now = time.monotonic()
        with self._lock:
            soon = any(now - self._handed_out.get(a, float("-inf")) < SOCKET_FREE_DELAY_S
                       for a in agents)
            self._handed_out.update((a, now) for a in agents)
        if soon:
            self.prestart(count)
        return agents

    def _acquire(self, count: int) -> list[Agent]:
        with self._lock:
            reuse = [a for a in self._idle if a.alive][:count]
            for agent in reuse:
                self._idle.remove(agent)
            self._busy.update(reuse)
        try:
            fresh = self._start_fresh(count - len(reuse))
        except BaseException:
            for agent in reuse:
                self.release(agent, True)
            raise
        return reuse + fresh

    def _start_fresh(self, count: int) -> list[Agent]:
        fresh: list[Agent] = []
        try:
            for _ in range(count):
                fresh.append(self._spawn())
            for agent in fresh:
                agent.wait_ready(START_TIMEOUT_S)
            self._start_all(fresh)
        except BaseException:
            for agent in fresh:
                self._discard(agent)
            raise
        return fresh

    def release(self, agent: Agent, healthy: bool) -> None:
        with self._lock:
            self._busy.discard(agent)
            if healthy and agent.alive:
                self._idle.append(agent)
                self._released.notify_all()
                return
        self._discard(agent)

    def close(self) -> None:
        """Shut every agent down and reap it; the pool can be used again afterwards."""
        self._wait_warm()
        with self._lock:
            agents = self._idle + list(self._busy)
            self._idle.clear()
            self._busy.clear()
        self._discard_all(agents)
        with self._lock:
            forks, self._forks = self._forks, None
        if forks is not None:
            forks.close()

    def trim(self, need: int) -> int:
        """Give back idle agents beyond ``need`` plus a few spares; returns how many.

        Without this the pool would keep its high-water mark (a 50-instance scenario's
        agents) for the rest of the session.
        """
        self._wait_warm()
        with self._lock:
            surplus = len(self._idle) - (need + max(KEEP_SPARES, spares_for(need)))
            if surplus <= 0:
                return 0
            gone, self._idle = self._idle[-surplus:], self._idle[:-surplus]
        self._discard_all(gone)
        return len(gone)

    @property
    def live_agents(self) -> int:
        with self._lock:
            return len(self._idle) + len(self._busy)

    # ----------------------------------------------------------------------------------

    def _spawn(self) -> Agent:
        with self._lock:
            self._serial += 1
            name = f"{self.name}{self._serial}"
        agent = Agent(name=name, python=self.python, forks=self._fork_server())
        with self._lock:
            self._busy.add(agent)
            self.started += 1
        return agent

    def _discard_all(self, agents: list[Agent]) -> None:
        """All asked at once, then each reaped: one agent's exit (≈ 15 ms, mostly
        ``libDestroy``) at a time would add up at every session's end."""
        for agent in agents:
            agent.ask_to_close()
        for agent in agents:
            self._discard(agent)

    def _discard(self, agent: Agent) -> None:
        with self._lock:
            self._busy.discard(agent)
            if agent in self._idle:
                self._idle.remove(agent)
            if agent.sip_port is not None:
                self._used_ports.discard(agent.sip_port)
            self._handed_out.pop(agent, None)
        agent.close()

    def _start_all(self, agents: list[Agent]) -> None:
        """Every agent's ``start`` sent at once, each on a port of its own; an agent whose
        port turned out taken then tries the next ones (``_start``)."""
        with self._lock:
            ports = [p for p in self.plan.sip_ports(self._cursor)
                     if p not in self._used_ports][:len(agents)]
            self._used_ports.update(ports)
        sent = []
        for agent, port in zip(agents, ports):
            try:
                sent.append((agent, port, agent.send("start", **self._start_args(port))))
            except AgentError:
                sent.append((agent, port, None))
        retry = agents[len(ports):]
        unsure = set(ports)  # reserved, not (yet) bound: given back if we stop early
        try:
            for agent, port, reply in sent:
                try:
                    if reply is None:
                        raise AgentError("start not sent")
                    reply.wait(START_TIMEOUT_S)
                except AgentError as exc:
                    if not agent.alive:
                        raise AgentUnavailable(
                            f"agent {agent.name} died while starting: {exc}; "
                            f"stderr: {' | '.join(agent.stderr_tail(5))}") from None
                    retry.append(agent)
                    continue
                unsure.discard(port)
                with self._lock:
                    self._cursor = (port + 2 if port + 2 <= self.plan.sip_last
                                    else self.plan.sip_first)
        finally:
            with self._lock:
                self._used_ports -= unsure
        for agent in retry:
            self._start(agent)

    def _start_args(self, port: int) -> dict[str, object]:
        return dict(sip_port=port, sip_port_last=port, bind_address=self.plan.address,
                    rtp_port=self.plan.rtp_for(port), rtp_port_count=RTP_PORTS_PER_AGENT)

    def _start(self, agent: Agent) -> None:
        """Bind the agent to the next free SIP port of this worker's block."""
        with self._lock:
            candidates = [p for p in self.plan.sip_ports(self._cursor) if p not in self._used_ports]
        last_error = ""
        for port in candidates:
            with self._lock:
                if port in self._used_ports:
                    continue
                self._used_ports.add(port)
            try:
                agent.request("start", timeout=START_TIMEOUT_S, **self._start_args(port))
            except AgentError as exc:
                with self._lock:
                    self._used_ports.discard(port)
                last_error = str(exc)
                if not agent.alive:
                    raise AgentUnavailable(f"agent {agent.name} died while starting: {exc}; "
                                           f"stderr: {' | '.join(agent.stderr_tail(5))}") from None
                continue
            with self._lock:
                self._cursor = port + 2 if port + 2 <= self.plan.sip_last else self.plan.sip_first
            return
        raise AgentUnavailable(
            f"no free SIP port in {self.plan.describe()} ({len(candidates)} tried; last error: "
            f"{last_error or 'none'}); free some ports or choose another range with "
            "--sipflow-port-base / --sipflow-port-range")
