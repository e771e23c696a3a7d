"""The engine on its own (no pytest plugin), driving real agents over real SIP."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Iterator

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
    run_scenario(build(basic_call()), pool)
    started = pool.started
    for _ in range(3):
        assert run_scenario(build(basic_call()), pool).passed
    assert pool.started == started, "no new agent process for later scenarios"


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
