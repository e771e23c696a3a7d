"""Python tests written only with the ``sip_instance`` and ``scenario`` fixtures, over real SIP."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from conftest import basic_call, chain, command, event, instance, scenario as make_scenario
from test_plugin import processes_with_token


def test_basic_call(sip_instance) -> None:  # type: ignore[no-untyped-def]
    alice, bob = sip_instance("alice", dn="100"), sip_instance("bob", dn="200")
    out = alice.call("200", headers={"X-Test": "basic"})
    inc = bob.wait_incoming()
    assert "sip:100@127.0.0.1" in inc.from_uri and "sip:200@127.0.0.1" in inc.to_uri
    assert inc.headers.get("X-Test") == "basic"
    assert out.wait_ringing() == 180
    inc.answer()
    out.wait_answered()
    out.release()
    assert inc.wait_disconnected()[0] == 200
    assert not alice.calls and not bob.calls


def test_busy(sip_instance) -> None:  # type: ignore[no-untyped-def]
    alice, bob = sip_instance("alice"), sip_instance("bob")
    out = alice.call(bob)
    bob.wait_incoming().respond(486)
    assert out.wait_rejected(486) == 486


def test_hold_and_retrieve(sip_instance) -> None:  # type: ignore[no-untyped-def]
    alice, bob = sip_instance("alice"), sip_instance("bob")
    out = alice.call(bob)
    inc = bob.wait_incoming()
    inc.answer()
    out.wait_answered()
    out.hold()
    inc.wait_held()
    out.retrieve()
    inc.wait_retrieved()
    inc.release()
    out.wait_disconnected()


def test_blind_transfer(sip_instance) -> None:  # type: ignore[no-untyped-def]
    a, b, c = sip_instance("a", dn="100"), sip_instance("b", dn="200"), sip_instance("c", dn="300")
    a_leg = a.call(b)
    b_leg = b.wait_incoming()
    b_leg.answer()
    a_leg.wait_answered()
    a_leg.transfer("300")
    b_to_c = b_leg.wait_transferred()
    c_leg = c.wait_incoming()
    assert "sip:200@" in c_leg.from_uri, "C is called by the transferee"
    c_leg.answer()
    b_to_c.wait_answered()
    assert a_leg.wait_notify(final=True) == 200
    b_to_c.release()
    c_leg.wait_disconnected()


def test_dtmf_both_ways(sip_instance) -> None:  # type: ignore[no-untyped-def]
    alice, bob = sip_instance("alice"), sip_instance("bob")
    out = alice.call(bob)
    inc = bob.wait_incoming()
    inc.answer()
    out.wait_answered()
    out.send_dtmf("123#")
    assert inc.wait_dtmf("123#") == "123#"
    inc.send_dtmf("9", method="info")
    assert out.wait_dtmf("9") == "9"


def test_attended_transfer(sip_instance) -> None:  # type: ignore[no-untyped-def]
    a, b, c = sip_instance("a"), sip_instance("b"), sip_instance("c")
    primary = a.call(b)
    b_leg = b.wait_incoming()
    b_leg.answer()
    primary.wait_answered()
    consult = a.call(c)
    c_leg = c.wait_incoming()
    c_leg.answer()
    consult.wait_answered()
    assert primary.transfer_attended(consult) == 200
    b_to_c = b_leg.wait_transferred()
    c_from_b = c_leg.wait_replaced()
    b_to_c.wait_answered()
    b_to_c.send_dtmf("5")
    assert c_from_b.wait_dtmf("5") == "5", "B and C talk to each other"
    assert not a.calls, "both of A's legs were released"


BUSY = make_scenario(
    [instance("caller", "100"), instance("callee", "200"),
     command("dial", "MakeCall", "caller", callId="c", targetUri="200"),
     event("rejected", "TIMEOUT", "caller", timeout=1),
     event("ring", "INCOMING", "callee", callId="c"),
     command("reject", "Response", "callee", callId="c", statusCode=486)],
    chain("caller", "dial") + chain("callee", "ring", "reject")
    + [{"id": "f", "source": "dial", "target": "rejected", "sourceHandle": "failure"}],
    name="reject")


@pytest.mark.parametrize("code", [486, 603, 404])
def test_one_graph_several_codes(scenario, code: int) -> None:  # type: ignore[no-untyped-def]
    import json
    result = scenario.run(json.loads(BUSY), overrides={"reject": {"statusCode": code}})
    result.assert_passed()
    assert result.nodes["dial"].state == "failed"
    assert result.nodes["dial"].message.endswith(f"failed: {code} " + {
        486: "Busy Here", 603: "Decline", 404: "Not Found"}[code])
    assert result.nodes["rejected"].state == "completed"
    assert any(m["summary"].startswith(f"SIP/2.0 {code}") for m in result.sip_messages)
    kinds = {e.kind for e in result.events}
    assert kinds == {"node-state", "action-log", "scenario-state"}


def test_scenario_instance_calls_a_python_driven_ua(scenario, sip_instance) -> None:  # type: ignore[no-untyped-def]
    import json
    carol = sip_instance("carol", dn="300")
    graph = json.loads(basic_call(target="300"))
    graph["nodes"] = [n for n in graph["nodes"] if n["id"] not in ("b", "in", "answer", "gone")]
    graph["edges"] = [e for e in graph["edges"] if e["source"] in ("a", "call", "talk")]
    running = scenario.load(graph).start(peers={"carol": carol})
    inc = carol.wait_incoming()
    inc.answer()
    inc.wait_disconnected()
    result = running.wait(10)
    result.assert_passed()


def test_scenario_from_a_file_path(scenario) -> None:  # type: ignore[no-untyped-def]
    result = scenario.run("../scenarios/busy-failure-branch.sipflow.json")
    assert result.passed and result.state == "completed"
    assert result.nodes["busy-is-expected"].duration is not None


def test_failing_helper_shows_expected_and_actual(sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makepyfile("""
        def test_wrong_code(sip_instance):
            alice, bob = sip_instance("alice"), sip_instance("bob")
            out = alice.call(bob)
            bob.wait_incoming().respond(603)
            out.wait_rejected(486)

        def test_nothing_comes(sip_instance):
            bob = sip_instance("bob", timeout=0.3)
            bob.wait_incoming()

        def test_assert_passed(scenario):
            scenario.run({"name": "lonely", "nodes": [
                {"id": "b", "type": "sipInstance", "data": {"dn": "200"}},
                {"id": "wait", "type": "event", "data": {"event": "INCOMING", "timeout": 200}}],
                "edges": [{"source": "b", "target": "wait"}]}).assert_passed()
    """)
    result = sipflow_pytester.runpytest()
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines([
        "*expected: 486", "*actual:   603 Decline*",
        "*bob: no incoming call within 300 ms*", "*actual:   last events: nothing*",
        "*scenario 'lonely' failed*", "*failing node: 'wait' (instance 'b', INCOMING)*",
    ])


def test_a_test_that_raises_mid_call_leaves_nothing_behind(
        sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makepyfile("""
        import os
        import time
        from pytest_sipflow.glue.keys import session_key

        def test_raises_mid_call(sip_instance):
            alice, bob = sip_instance("alice"), sip_instance("bob")
            out = alice.call(bob)
            bob.wait_incoming().answer()
            out.wait_answered()
            raise RuntimeError("boom in the middle of a call")

        def sockets(pid):
            fd_dir = f"/proc/{pid}/fd"
            return sum(os.readlink(f"{fd_dir}/{fd}").startswith("socket:") for fd in os.listdir(fd_dir))

        def test_pool_is_clean_afterwards(pytestconfig):
            pool = pytestconfig.stash[session_key].pool
            assert pool.live_agents == 2, "both agents went back to the pool"
            agents = pool.acquire(3)  # the two used ones, and a fresh one as the baseline
            try:
                baseline = sockets(agents[2].pid)
                for agent in agents[:2]:
                    state = agent.request("ping")
                    assert state["calls"] == [], state
                    assert not state["configured"], state
                    # pjsip closes a media socket up to 500 ms after the call; then none is left
                    deadline = time.monotonic() + 2
                    while sockets(agent.pid) > baseline and time.monotonic() < deadline:
                        time.sleep(0.05)
                        agent.request("ping")
                    assert sockets(agent.pid) == baseline
            finally:
                for agent in agents:
                    pool.release(agent, True)
    """)
    token = uuid.uuid4().hex
    env = dict(os.environ, SIPFLOW_TEST_TOKEN=token)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
                          cwd=sipflow_pytester.path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout + proc.stderr
    assert "boom in the middle of a call" in proc.stdout
    assert not processes_with_token(token), "no agent process outlives the session"


def test_play_a_wav(sip_instance, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import wave
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x10" * 1600)  # 200 ms
    alice, bob = sip_instance("alice"), sip_instance("bob")
    out = alice.call(bob)
    bob.wait_incoming().answer()
    out.wait_answered()
    out.play(path)  # returns at the end of the file
    assert any(e["event"] == "play_done" for e in alice.events)
    with pytest.raises(AssertionError, match="(?i)cannot play .*missing.wav: no such file"):
        out.play(tmp_path / "missing.wav")
