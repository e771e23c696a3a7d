"""The engine's own control flow over fake agents: deadline, abort, branches, event delivery.

No pjsua2 and no SIP here (``fakeagent``); real SIP covers the SIP paths elsewhere.
"""

from __future__ import annotations

import json
import threading
import warnings
from typing import Any

from hypothesis import HealthCheck, given, settings

from conftest import basic_call, chain, command, event, instance, scenario
from fakeagent import FakeNetwork
from pytest_sipflow.format import graph
from pytest_sipflow.core.mailbox import Mailbox
from pytest_sipflow.core.phone import Phone
from pytest_sipflow.engine.events import ExecutionEvent
from pytest_sipflow.engine.runner import EngineSettings, run_scenario
from pytest_sipflow.errors import ScenarioFormatError, SipflowWarning
from pytest_sipflow.api.ua import UserAgent
from test_fuzz import mutated_docs, valid_docs


def build(text: str) -> graph.Graph:
    return graph.from_value(json.loads(text), "logic.sipflow.json")


def test_basic_call_over_fake_agents() -> None:
    net = FakeNetwork()
    result = run_scenario(build(basic_call()), net)
    assert result.passed, result.failure
    assert all(healthy for _, healthy in net.released)


def test_deadline_starts_when_the_instances_are_ready() -> None:
    # Bug: the clock started before agents were acquired, so slow start-up on a loaded
    # machine failed a scenario whose nodes took a fraction of its deadline.
    nodes = [instance("a", "100"), event("pause", "TIMEOUT", "a", timeout=100)]
    g = build(scenario(nodes, chain("a", "pause"), timeout=400))
    result = run_scenario(g, FakeNetwork(acquire_delay=0.6))
    assert result.passed, result.failure
    assert result.nodes["pause"].started is not None and result.nodes["pause"].started < 0.3


def test_deadline_names_the_node_running_longest() -> None:
    # b's node is listed first and is running too, but a's has run since the start.
    nodes = [instance("b", "200"), event("b-short", "TIMEOUT", "b", timeout=200),
             event("b-long", "TIMEOUT", "b", timeout=5000),
             instance("a", "100"), event("a-long", "TIMEOUT", "a", timeout=5000)]
    g = build(scenario(nodes, chain("b", "b-short", "b-long") + chain("a", "a-long"),
                       timeout=600))
    result = run_scenario(g, FakeNetwork())
    assert result.failure is not None
    assert result.failure.node == "a-long", result.failure
    assert "(also running: b-long)" in result.failure.reason


def test_listener_runs_on_the_thread_of_run_never_on_a_reader_thread() -> None:
    threads: set[str] = set()
    kinds: set[str] = set()

    def listener(ev: ExecutionEvent) -> None:
        threads.add(threading.current_thread().name)
        kinds.add(ev.kind)

    result = run_scenario(build(basic_call()), FakeNetwork(), listener=listener)
    assert result.passed, result.failure
    assert kinds == {"node-state", "action-log", "scenario-state"}
    assert threads == {threading.current_thread().name}, threads


def test_a_raising_listener_stops_the_run_and_is_re_raised() -> None:
    def listener(ev: ExecutionEvent) -> None:
        if ev.kind == "node-state":
            raise RuntimeError("hook broke")

    try:
        run_scenario(build(basic_call()), FakeNetwork(), listener=listener)
    except RuntimeError as exc:
        assert str(exc) == "hook broke"
    else:
        raise AssertionError("the listener's error was swallowed")


def test_failure_branch_is_taken_and_the_scenario_passes() -> None:
    nodes = [instance("a", "100"), instance("b", "200"),
             command("dial", "MakeCall", "a", callId="c", targetUri="200"),
             event("busy", "TIMEOUT", "a", timeout=10),
             event("in", "INCOMING", "b", callId="c"),
             command("reject", "Response", "b", callId="c", statusCode=486)]
    edges = chain("a", "dial") + chain("b", "in", "reject")
    edges.append({"source": "dial", "target": "busy", "sourceHandle": "failure"})
    result = run_scenario(build(scenario(nodes, edges)), FakeNetwork())
    assert result.passed, result.failure
    assert result.node_states()["dial"] == "failed"
    assert result.paths["a"] == ["dial", "busy"]


def test_abort_cancels_waiting_nodes_and_skips_the_rest() -> None:
    nodes = [instance("a", "100"), instance("b", "200"),
             event("wait", "INCOMING", "a", timeout=5000),
             command("oops", "Release", "b", callId="nothing"),
             event("never", "TIMEOUT", "b", timeout=10)]
    g = build(scenario(nodes, chain("a", "wait") + chain("b", "oops", "never")))
    result = run_scenario(g, FakeNetwork())
    assert result.node_states() == {"wait": "cancelled", "oops": "failed", "never": "skipped"}
    assert result.failure is not None and result.failure.node == "oops"


def test_wait_notify_skips_the_refers_own_accepted_report() -> None:
    # Bug: Call.wait_notify() returned pjsua's "100 Accepted" (the REFER's 202) as a NOTIFY.
    box = Mailbox("a", threading.Event())
    box.bind("c1", "k")
    phone = Phone("a", None, box)  # type: ignore[arg-type]  # waits only read the mailbox
    box.post({"event": "notify", "call": "c1", "code": 100, "reason": "Accepted", "final": False})
    box.post({"event": "notify", "call": "c1", "code": 100, "reason": "Trying", "final": False})
    box.post({"event": "notify", "call": "c1", "code": 200, "reason": "OK", "final": True})
    assert phone.wait_notify("k", None, False, 1.0).raw["reason"] == "Trying"
    assert phone.wait_notify("k", None, True, 1.0).raw["code"] == 200


def test_python_api_bounds_the_agent_by_its_own_timeout() -> None:
    # Bug: Call.hold(timeout) bounded only the caller's wait; the agent kept its 10 s default.
    net = FakeNetwork()
    a_agent, b_agent = net.acquire(2)
    try:
        alice, bob = UserAgent(a_agent, "alice", "100"), UserAgent(b_agent, "bob", "200")
        out = alice.call(bob)
        bob.wait_incoming().answer()
        out.wait_answered()
        out.hold(timeout=0.5)
        holds = [args for name, op, args in net.requests if op == "hold"]
        assert holds == [{"call": out.handle, "timeout": 0.5}]
    finally:
        for agent in (a_agent, b_agent):
            agent.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(valid_docs() | mutated_docs())
def test_engine_survives_random_graphs_over_fake_agents(doc: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SipflowWarning)
        try:
            g = graph.from_value(doc, "fuzz.sipflow.json")
        except ScenarioFormatError:
            return
    result = run_scenario(g, FakeNetwork(), EngineSettings(event_timeout_ms=30,
                                                           scenario_timeout_ms=2000))
    assert result.state in ("completed", "failed")
    assert all(n.state in ("completed", "failed", "cancelled", "skipped")
               for n in result.nodes.values())
    if result.state == "failed":
        assert result.failure is not None and result.failure.reason
        assert not result.failure.reason.startswith("internal error"), result.failure


def test_every_command_and_event_of_the_format_has_a_handler() -> None:
    from pytest_sipflow.format import schema
    from pytest_sipflow.engine.nodes import HANDLERS

    models = {*schema.COMMANDS.values(), *schema.EVENTS.values()}
    assert models - set(HANDLERS) == set()
