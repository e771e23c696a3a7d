"""The engine on its own (no pytest plugin), driving real agents over real SIP."""

from __future__ import annotations

import json
import re
import os
import threading
import time
from typing import Any, Iterator

import pytest

from conftest import basic_call, chain, command, event, instance, scenario, SLOT, own_pool, own_rtp_base
from pytest_sipflow.format import graph
from pytest_sipflow.engine.events import NodeStateEvent
from pytest_sipflow.engine.runner import EngineSettings, run_scenario
from pytest_sipflow.agent.pool import AgentPool
from pytest_sipflow.agent.ports import PortPlan


@pytest.fixture(scope="module")
def pool() -> Iterator[AgentPool]:
    yield from own_pool(9000, 4, "engine")


def build(text: str):  # type: ignore[no-untyped-def]
    return graph.from_value(json.loads(text), "test.sipflow.json")


def test_basic_call_passes_with_states_events_and_sip_messages(pool: AgentPool) -> None:
    seen: list[NodeStateEvent] = []
    result = run_scenario(build(basic_call()), pool,
                          listener=lambda e: seen.append(e) if isinstance(e, NodeStateEvent) else None)
    assert result.passed, result.failure
    assert result.node_states() == dict.fromkeys(
        ["call", "talk", "bye", "in", "answer", "gone"], "completed")
    assert result.paths == {"a": ["call", "talk", "bye"], "b": ["in", "answer", "gone"]}
    assert [e.new_state for e in seen if e.node_id == "call"] == ["running", "completed"]
    summaries = [m["summary"] for m in result.sip_messages]
    assert any(s.startswith("INVITE sip:200@127.0.0.1") for s in summaries), summaries
    assert any(s.startswith("SIP/2.0 180") for s in summaries), summaries
    assert any(s.startswith("BYE ") for s in summaries), summaries
    talk = result.nodes["talk"]
    assert talk.duration is not None and talk.duration >= 0.05


def test_failure_without_branch_aborts_and_cancels_the_others(pool: AgentPool) -> None:
    nodes = [instance("a", "100"), instance("b", "200"),
             command("call", "MakeCall", "a", callId="c", targetUri="200"),
             event("wait-long", "DISCONNECTED", "a", callId="c", timeout=8000),
             event("in", "INCOMING", "b", callId="c"),
             command("answer", "Answer", "b", callId="c"),
             event("settle", "TIMEOUT", "b", timeout=200),
             command("oops", "Release", "b", callId="no-such-call"),
             event("never", "TIMEOUT", "b", timeout=10)]
    g = build(scenario(nodes, chain("a", "call", "wait-long") + chain("b", "in", "answer", "settle",
                                                                       "oops", "never")))
    start = time.monotonic()
    result = run_scenario(g, pool)
    assert time.monotonic() - start < 6, "an abort does not wait for wait-long's 8 s"
    assert result.state == "failed"
    assert result.failure is not None and result.failure.node == "oops"
    assert "no call under callId 'no-such-call'" in result.failure.reason
    assert result.failure.actual == "live calls: 'c'"
    assert result.node_states() == {"call": "completed", "wait-long": "cancelled",
                                    "in": "completed", "answer": "completed",
                                    "settle": "completed", "oops": "failed", "never": "skipped"}


def test_scenario_deadline_names_the_running_node(pool: AgentPool) -> None:
    nodes = [instance("a", "100"), event("sleepy", "TIMEOUT", "a", timeout=5000)]
    g = build(scenario(nodes, chain("a", "sleepy"), timeout=300))
    start = time.monotonic()
    result = run_scenario(g, pool, EngineSettings())
    assert time.monotonic() - start < 4, "ended by the 300 ms deadline, not the 5 s node"
    assert result.failure is not None
    assert result.failure.node == "sleepy"
    assert "scenario deadline of 300 ms exceeded" in result.failure.reason


def test_agents_are_reused_after_reset(pool: AgentPool) -> None:
    for _ in range(2):  # back to back: the pool warms its spare sets (``pool.acquire``)
        run_scenario(build(basic_call()), pool)
    pool.settle()  # once they are all up
    started = pool.started
    for _ in range(6):
        assert run_scenario(build(basic_call()), pool).passed
    assert pool.started == started, "no new agent process for later scenarios"


def test_back_to_back_scenarios_rotate_over_spare_agents(pool: AgentPool) -> None:
    # Bug: a fast run through the engine (no plugin prestart) reused the same two agents
    # for every call; each met pjsip's socket table limit after 28 calls and waited.
    def pids(result: Any) -> set[str]:
        return {m.group(1) for ev in result.events
                for m in [re.search(r"\(pid (\d+)\) ready as", getattr(ev, "message", ""))] if m}

    for _ in range(2):
        run_scenario(build(basic_call()), pool)
    pool.settle()  # the spare sets, once they are up
    last: dict[str, int] = {}
    gaps = []
    for turn in range(10):
        result = run_scenario(build(basic_call()), pool)
        assert result.passed
        for pid in pids(result):
            if pid in last:
                gaps.append(turn - last[pid])
            last[pid] = turn
    assert gaps and min(gaps) >= 4, gaps



def test_nothing_is_left_after_the_pool_closes() -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before_fds = fds()
    before_children = _children()
    plan = PortPlan(sip_base=9800 + SLOT * 10, sip_range=10, rtp_base=own_rtp_base(5))
    local = AgentPool(plan, name="leakcheck")
    assert run_scenario(build(basic_call()), local).passed
    assert local.live_agents == 2
    local.close()
    assert local.live_agents == 0
    assert not [t.name for t in threading.enumerate() if "leakcheck" in t.name]
    assert fds() == before_fds
    assert _children() == before_children, "every agent process was reaped"


def _children() -> set[str]:
    return {p for p in os.listdir("/proc") if p.isdigit() and _ppid(p) == os.getpid()}


def _ppid(pid: str) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


def test_a_kept_trace_is_fetched_for_a_header_check_and_a_failure_only(pool: AgentPool) -> None:
    keep = EngineSettings(keep_trace=True)
    passed = run_scenario(build(basic_call()), pool, keep)
    assert passed.passed, passed.failure
    assert passed.sip_messages == []  # nothing read it: the agents never sent it
    checked = json.loads(basic_call())
    for node in checked["nodes"]:
        if node["id"] == "in":
            node["data"]["expectHeaders"] = {"From": "sip:100@"}
    result = run_scenario(build(json.dumps(checked)), pool, keep)
    assert result.passed, result.failure
    fetched = [(m["instance"], m["summary"].split(" ")[0]) for m in result.sip_messages]
    assert fetched[0] == ("b", "INVITE"), fetched  # b's trace, fetched by its check
    assert "BYE" not in {s for _, s in fetched} and {i for i, _ in fetched} == {"b"}
    node = next(n for n in checked["nodes"] if n["id"] == "in")
    node["data"]["expectHeaders"] = {"From": "sip:999@"}
    failed = run_scenario(build(json.dumps(checked)), pool, keep)
    assert failed.failure is not None and "From" in failed.failure.actual
    seen = {(m["instance"], m["dir"], m["summary"].split(" ")[0]) for m in failed.sip_messages}
    assert {("a", "tx", "INVITE"), ("b", "rx", "INVITE"), ("b", "tx", "SIP/2.0")} <= seen


def test_an_agent_left_configured_as_an_instance_is_not_configured_again(pool: AgentPool) -> None:
    agents = list(pool.acquire(2))
    healthy = True

    class These:  # always these two agents, in the order given
        order = agents

        def acquire(self, count: int) -> list:  # type: ignore[type-arg]
            return list(self.order)

        def release(self, agent: object, ok: bool) -> None:
            nonlocal healthy
            healthy = healthy and ok

    try:
        g = build(basic_call())
        assert run_scenario(g, These()).passed
        by_dn = {a.configured["dn"]: a for a in agents if a.configured}
        assert set(by_dn) == {"100", "200"}
        for agent in agents:
            agent._sent.clear()  # the requests each agent is sent from here on
        These.order = agents[::-1]  # handed over the other way round: still paired by dn
        result = run_scenario(g, These())
        assert result.passed, result.failure
        ops = {dn: [m["op"] for _, m in a._sent] for dn, a in by_dn.items()}
        assert ops == {"100": ["make_call", "hangup", "reset"], "200": ["answer", "reset"]}
        other = json.loads(basic_call())
        other["nodes"][0]["data"]["label"] = "Alice"  # same dn, another display name
        assert run_scenario(build(json.dumps(other)), These()).passed
        assert "configure" in [m["op"] for _, m in by_dn["100"]._sent][-4:]
    finally:
        for agent in agents:
            pool.release(agent, healthy)
