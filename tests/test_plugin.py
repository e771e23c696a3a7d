"""The plugin as users run it: pytester runs of scenario files over real SIP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import (REPO, agent_pids, answered_call, basic_call, chain, command, event,
                      instance, scenario)

BUNDLED = sorted((REPO / "scenarios").glob("*.sipflow.json"))


def test_plugin_loads_from_entry_point_and_lists_one_item_per_file(
        sipflow_pytester: pytest.Pytester) -> None:
    for path in BUNDLED:
        shutil.copy(path, sipflow_pytester.path / path.name)
    result = sipflow_pytester.runpytest("--collect-only", "-q")
    result.assert_outcomes()
    lines = [line for line in result.outlines if ".sipflow.json::" in line]
    assert len(lines) == len(BUNDLED) >= 5, result.outlines
    assert any("busy-failure-branch.sipflow.json::Bob is busy" in line for line in lines)


def test_bundled_scenarios_pass(sipflow_pytester: pytest.Pytester) -> None:
    for path in BUNDLED:
        shutil.copy(path, sipflow_pytester.path / path.name)
    result = sipflow_pytester.runpytest("-v")
    result.assert_outcomes(passed=len(BUNDLED))
    result.stdout.fnmatch_lines(["sipflow: SIP 127.0.0.1:* (step 2), RTP *; event timeout 10000 ms*"])


def busy_without_branch() -> str:
    nodes = [instance("alice", "100"), instance("bob", "200"),
             command("dial", "MakeCall", "alice", callId="call", targetUri="200"),
             event("ring", "INCOMING", "bob", callId="call"),
             command("busy", "Response", "bob", callId="call", statusCode=486)]
    return scenario(nodes, chain("alice", "dial") + chain("bob", "ring", "busy"), name="busy")


def test_busy_without_failure_branch_fails_naming_node_and_code(
        sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", busy=busy_without_branch())
    result = sipflow_pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*scenario 'busy' failed",
        "*failing node: 'dial' (instance 'alice', MakeCall)",
        "*reason: call to sip:200@127.0.0.1:* failed: 486 Busy Here",
        "*expected: 2xx final response",
        "*actual:   486 Busy Here",
        "*paths:",
        "*alice: dial [[]MakeCall FAILED * ms[]]",
        "*bob  : ring [[]INCOMING ok * ms[]] -> busy [[]Response ok * ms[]]",
    ])
    assert "Traceback" not in result.stdout.str()
    assert "runner.py" not in result.stdout.str(), "no internal traceback unless asked"


def test_full_trace_shows_the_internal_traceback(sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", busy=busy_without_branch())
    result = sipflow_pytester.runpytest("--sipflow-full-trace")
    result.assert_outcomes(failed=1)
    assert "runner.py" in result.stdout.str() or "collect.py" in result.stdout.str()
    result.stdout.fnmatch_lines(["*actual:   486 Busy Here*"])


def test_incoming_timeout_without_caller_fails_fast(sipflow_pytester: pytest.Pytester) -> None:
    nodes = [instance("bob", "200"), event("wait", "INCOMING", "bob", timeout=300)]
    sipflow_pytester.makefile(".sipflow.json", lonely=scenario(nodes, chain("bob", "wait")))
    result = sipflow_pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*failing node: 'wait' (instance 'bob', INCOMING)",
                                 "*reason: no incoming call within 300 ms",
                                 "*expected: INCOMING"])
    (call,) = [r for r in result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
               if r.when == "call"]
    assert 0.3 <= call.duration < 5.0, f"a 300 ms timeout took {call.duration:.2f} s to fail"


def test_event_before_its_node_waits_is_not_lost(sipflow_pytester: pytest.Pytester) -> None:
    # Bob starts waiting for the INCOMING 400 ms after Alice's INVITE arrived, and Alice's
    # RINGING node starts only after the call was answered: both events came earlier.
    nodes = [instance("alice", "100"), instance("bob", "200"),
             command("dial", "MakeCall", "alice", callId="c", targetUri="200"),
             event("ringback", "RINGING", "alice", callId="c", timeout=100),
             command("hangup", "Release", "alice", callId="c"),
             event("busy-elsewhere", "TIMEOUT", "bob", timeout=400),
             event("ring", "INCOMING", "bob", callId="c", timeout=100),
             command("answer", "Answer", "bob", callId="c"),
             event("bye", "DISCONNECTED", "bob", callId="c", timeout=2000)]
    edges = chain("alice", "dial", "ringback", "hangup") + \
        chain("bob", "busy-elsewhere", "ring", "answer", "bye")
    sipflow_pytester.makefile(".sipflow.json", late=scenario(nodes, edges))
    result = sipflow_pytester.runpytest()
    result.assert_outcomes(passed=1)


def test_broken_files_are_collection_errors_and_other_files_still_run(
        sipflow_pytester: pytest.Pytester) -> None:
    good = basic_call()
    doc = json.loads(good)
    doc["nodes"][2]["data"]["command"] = "Dial"
    sipflow_pytester.makefile(".sipflow.json", good=good, broken=json.dumps(doc),
                              badjson='{"nodes": [}')
    result = sipflow_pytester.runpytest()
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines([
        "badjson.sipflow.json: invalid sipflow scenario: bad JSON: * at line 1, column 12",
        "*",
        "broken.sipflow.json: invalid sipflow scenario: node 'call', field 'command': "
        "unknown command 'Dial'; allowed: MakeCall, *",
    ])
    assert "Traceback" not in result.stdout.str()


def test_conftest_hook_receives_node_states_in_order(sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makeconftest("""
        import json
        SEEN = []
        def pytest_sipflow_node_state(item, event):
            SEEN.append((event.node_id, event.previous_state, event.new_state, event.timestamp))
        def pytest_sipflow_scenario_state(item, event):
            SEEN.append(("scenario", event.state))
        def pytest_unconfigure(config):
            with open("seen.json", "w") as f:
                json.dump(SEEN, f)
        """)
    sipflow_pytester.makefile(".sipflow.json", call=basic_call())
    sipflow_pytester.runpytest().assert_outcomes(passed=1)
    seen = json.loads((sipflow_pytester.path / "seen.json").read_text())
    assert seen[0] == ["scenario", "running"] and seen[-1] == ["scenario", "completed"]
    states = [s for s in seen if s[0] != "scenario"]
    times = [s[3] for s in states]
    assert times == sorted(times), "node-state events arrive in the order they happened"
    by_node: dict[str, list[str]] = {}
    for node_id, previous, new, _ in states:
        by_node.setdefault(node_id, []).append(f"{previous}>{new}")
    assert by_node == {n: ["pending>running", "running>completed"]
                       for n in ("call", "talk", "bye", "in", "answer", "gone")}
    a_chain = [s[0] for s in states if s[0] in ("call", "talk", "bye") and s[2] == "completed"]
    assert a_chain == ["call", "talk", "bye"]


KILLER = """
    import os, re, signal
    PIDS = {}
    def pytest_sipflow_action_log(item, event):
        m = re.search(r"pid (\\d+)", event.message)
        if m and event.node_id is None:
            PIDS[event.instance_id] = int(m.group(1))
    def pytest_sipflow_node_state(item, event):
        if event.node_id == "doomed" and event.new_state == "running":
            os.kill(PIDS["b"], signal.SIGKILL)
"""


def test_killed_agent_fails_only_its_item(sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makeconftest(KILLER)
    sipflow_pytester.makefile(".sipflow.json", a_killed=answered_call("doomed"),
                              b_after=basic_call())
    token = uuid.uuid4().hex
    os.environ["SIPFLOW_TEST_TOKEN"] = token
    try:
        result = sipflow_pytester.runpytest_subprocess("-p", "no:cacheprovider")
    finally:
        del os.environ["SIPFLOW_TEST_TOKEN"]
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines([
        "*failing node: 'doomed' (instance 'b', DISCONNECTED)",
        "*reason: the SIP agent of instance 'b' died (exit code -9)",
    ])
    assert not processes_with_token(token), "every agent of the run was reaped"


def processes_with_token(token: str) -> list[int]:
    found = []
    for pid in agent_pids():
        try:
            if token.encode() in Path(f"/proc/{pid}/environ").read_bytes():
                found.append(pid)
        except OSError:
            pass
    return found


def test_no_agent_process_is_left_after_a_session(sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", one=basic_call(), two=basic_call())
    token = uuid.uuid4().hex
    env = dict(os.environ, SIPFLOW_TEST_TOKEN=token)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
                          cwd=sipflow_pytester.path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
    assert not processes_with_token(token)


def test_every_refusal_is_a_collection_error_and_the_good_file_runs(
        sipflow_pytester: pytest.Pytester) -> None:
    from test_graph import REFUSALS

    files = {f"bad_{i}": text for i, (text, *_rest) in enumerate(REFUSALS.values())}
    sipflow_pytester.makefile(".sipflow.json", good=basic_call(), **files)
    result = sipflow_pytester.runpytest("-p", "no:warnings")
    result.assert_outcomes(passed=1, errors=len(REFUSALS))
    out = result.stdout.str()
    for i, (_text, node_id, field, words) in enumerate(REFUSALS.values()):
        line = next(l for l in result.outlines if l.startswith(f"bad_{i}.sipflow.json: invalid"))
        if node_id is not None:
            assert f"node {node_id!r}" in line, line
        if field is not None:
            assert f"field {field!r}" in line, line
        assert words in line, line
    assert "Traceback" not in out


def test_unreachable_node_is_a_warning_and_the_scenario_runs(
        sipflow_pytester: pytest.Pytester) -> None:
    doc = json.loads(basic_call())
    doc["nodes"].append(event("orphan", "TIMEOUT", "a", timeout=1))
    sipflow_pytester.makefile(".sipflow.json", orphan=json.dumps(doc))
    result = sipflow_pytester.runpytest("-W", "always::pytest_sipflow.errors.SipflowWarning")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*orphan.sipflow.json:1: SipflowWarning: node 'orphan' is "
                                 "reachable from no sipInstance and will be skipped"])


def test_options_from_ini_and_command_line_show_in_the_header(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # the inner run is worker 0's
    pytester.makeini("""
        [pytest]
        sipflow_port_base = 6000
        sipflow_port_range = 100
        sipflow_event_timeout = 2500
        """)
    result = pytester.runpytest("--collect-only", "--sipflow-port-base", "6100",
                                "--sipflow-scenario-timeout", "9000", "--sipflow-full-trace")
    result.stdout.fnmatch_lines(["sipflow: SIP 127.0.0.1:6100-6198 (step 2), RTP 20000-20999; "
                                 "event timeout 2500 ms, scenario timeout 9000 ms; full trace"])


def test_bad_option_values_are_usage_errors(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # the inner run is worker 0's
    pytester.makeini("""
        [pytest]
        sipflow_event_timeout = soon
        """)
    result = pytester.runpytest("--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*sipflow_event_timeout = 'soon': expected a number*"])
    result = pytester.runpytest("--collect-only", "-o", "sipflow_event_timeout=1",
                                "--sipflow-port-base", "65500")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*sipflow ports: port block of worker 0 ends past 65535*"])


POOL_REPORTER = """
import json
from pytest_sipflow.glue.keys import session_key

def pytest_sessionfinish(session):
    pool = session.config.stash[session_key].pool
    with open("pool.json", "w") as f:
        json.dump({"live": pool.live_agents, "started": pool.started}, f)
"""


def test_pool_gives_back_agents_the_next_items_do_not_need(
        sipflow_pytester: pytest.Pytester) -> None:
    # Bug: after a large scenario the pool kept its high-water mark for the whole session.
    many = [instance(f"u{i}", f"1{i}") for i in range(8)]
    many += [event(f"t{i}", "TIMEOUT", f"u{i}", timeout=10) for i in range(8)]
    edges = [e for i in range(8) for e in chain(f"u{i}", f"t{i}")]
    sipflow_pytester.makefile(".sipflow.json", a_many=scenario(many, edges),
                              b_basic=basic_call())
    sipflow_pytester.makeconftest(POOL_REPORTER)
    result = sipflow_pytester.runpytest()
    result.assert_outcomes(passed=2)
    seen = json.loads((sipflow_pytester.path / "pool.json").read_text())
    assert seen["started"] >= 8
    assert seen["live"] <= 2 + 6, seen  # what b_basic needs plus its spares (spares_for)


def test_importing_the_plugin_imports_no_loader_engine_or_agent_code() -> None:
    # Bug: every pytest run in the venv paid ~0.23 s for pydantic models built at import.
    # ... nor for the report writers (tests/test_reports.py: nor per passing item).
    code = ("import sys, pytest_sipflow.plugin; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'dpkt', "
            "'pytest_html') or m.startswith('pytest_sipflow.reporting') "
            "or m in ('pytest_sipflow.format.schema', 'pytest_sipflow.format.graph', "
            "'pytest_sipflow.engine.runner', 'pytest_sipflow.agent.client', "
            "'pytest_sipflow.api.ua', 'pytest_sipflow.agent.pool')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_hooks_run_on_the_test_thread_and_a_slow_hook_stalls_no_agent(
        sipflow_pytester: pytest.Pytester) -> None:
    # Bug: hooks ran on an agent's reader thread under the engine's lock, so a slow
    # pytest_sipflow_action_log stalled every agent's replies.
    sipflow_pytester.makefile(".sipflow.json", call=basic_call())
    sipflow_pytester.makeconftest("""
        import json, threading, time
        SEEN = set()
        def pytest_sipflow_action_log(item, event):
            SEEN.add(threading.current_thread().name)
            if event.level == "sip":
                time.sleep(0.02)  # slow, on purpose
        def pytest_sessionfinish(session):
            with open("threads.json", "w") as f:
                json.dump(sorted(SEEN), f)
    """)
    result = sipflow_pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    threads = json.loads((sipflow_pytester.path / "threads.json").read_text())
    assert threads == ["MainThread"], threads
