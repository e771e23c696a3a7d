"""Issue 10: SIP checks in scenarios (headers out and in, expected codes, absent, CONNECTED,
MESSAGE) and the same checks in the Python API.

The passing files of ``scenarios/checks/`` run as ordinary items of the suite; the must-fail
files of ``tests/data/checks/`` run here through pytester with their expected failure text.
Pure parts (which message completed an event, collection refusals) are tested without
sockets.
"""

from __future__ import annotations

import base64
import importlib.util
import json
from typing import Any, Iterator

import pytest

import sipflows
from conftest import REPO, chain, command, event, instance, scenario, own_pool
from pytest_sipflow.format import graph
from pytest_sipflow.core.failures import StepFailed
from pytest_sipflow.core.phone import Phone, codec_matches
from pytest_sipflow.core.trace import completing_message, last_received
from pytest_sipflow.engine.runner import run_scenario
from pytest_sipflow.errors import ScenarioFormatError
from pytest_sipflow.agent.pool import AgentPool
from pytest_sipflow.sip.message import parse

CHECKS = REPO / "scenarios" / "checks"
MUST_FAIL = REPO / "tests" / "data" / "checks"


# --- the committed files are the generator's output ---------------------------------------


def test_committed_files_are_what_make_checks_writes() -> None:
    spec = importlib.util.spec_from_file_location("make_checks", CHECKS / "make_checks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for path, text in module.outputs().items():
        assert path.read_text(encoding="utf-8") == text, f"run make_checks.py: {path} differs"
        if path.parent == CHECKS:
            graph.load(path)  # every passing file loads (and runs as an item of the suite)


def test_core05_waits_for_connected_not_for_a_sleep() -> None:
    g = graph.load(REPO / "scenarios" / "call-control" / "core-05-attended-transfer.sipflow.json")
    names = [s.name for s in g.steps.values() if s.instance == "bob"]
    assert "CONNECTED" in names and "TIMEOUT" not in names


# --- which message completed an event (pure) ----------------------------------------------


def records() -> list[dict[str, Any]]:
    return sipflows.basic_call() + sipflows.records(sipflows.BUSY, sipflows.BUSY_CALL_ID,
                                                    keys={"alice": "c2", "bob": "c2"})


def of(instance: str) -> list[dict[str, Any]]:
    return [r for r in records() if r["instance"] == instance]


@pytest.mark.parametrize("who, call, kind, start", [
    ("bob", "c1", "incoming", "INVITE sip:200@127.0.0.1:5064 SIP/2.0"),
    ("alice", "c1", "ringing", "SIP/2.0 180 Ringing"),
    ("alice", "c1", "final", "SIP/2.0 200 OK"),       # not the later 200 to the BYE
    ("alice", "c1", "confirmed", "SIP/2.0 200 OK"),   # UAC: the 2xx
    ("bob", "c1", "confirmed", "ACK sip:200@127.0.0.1:5064 SIP/2.0"),  # UAS: the ACK
    ("bob", "c1", "disconnected", "BYE sip:200@127.0.0.1:5064 SIP/2.0"),
    ("alice", "c2", "final", "SIP/2.0 486 Busy Here"),
    ("alice", "c2", "disconnected", "SIP/2.0 486 Busy Here"),
])
def test_completing_message_is_the_last_received_one_of_its_shape(
        who: str, call: str, kind: str, start: str) -> None:
    message = completing_message(of(who), call, kind)
    assert message is not None and message.start_line == start


def test_records_after_the_event_are_not_seen_and_other_calls_do_not_count() -> None:
    bob = of("bob")
    upto_invite = bob[:1]  # the event came right after the INVITE
    assert completing_message(upto_invite, "c1", "disconnected") is None
    assert completing_message(of("bob"), "c9", "incoming") is None
    assert completing_message(of("alice"), "c1", "incoming") is None  # alice sent it: tx


def test_out_of_dialog_messages_match_by_call_id() -> None:
    text = ("MESSAGE sip:200@127.0.0.1 SIP/2.0\r\nCall-ID: m1\r\nCSeq: 1 MESSAGE\r\n"
            "X-Order: 4711\r\nContent-Length: 2\r\n\r\nhi")
    rec = {"dir": "rx", "text": text, "call": None, "sip_call_id": "m1",
           "raw": base64.b64encode(text.encode()).decode()}
    assert completing_message([rec], None, "message", "m1").header_values("x-order") == ["4711"]
    assert completing_message([rec], None, "message", "m2") is None


def test_last_received_and_malformed_records_are_skipped() -> None:
    bob = of("bob") + [{"dir": "rx", "call": "c1", "malformed": True, "text": "garbage"}]
    message = last_received(bob, "c1")
    assert message is not None and message.start_line.startswith("BYE")


def test_failure_text_names_header_check_and_actual_value() -> None:
    message = parse(sipflows.message("INVITE sip:200@x SIP/2.0", "c", "1 INVITE", "alice", "bob",
                                     ("X-Case: 42",)))
    with pytest.raises(StepFailed) as info:
        Phone.assert_headers(message, {"X-Case": "^43$", "Route": "x"}, "INVITE")
    assert info.value.render().splitlines() == [
        "2 header checks failed on INVITE sip:200@x SIP/2.0",
        "  expected: header 'X-Case' to match '^43$'; header 'Route' to match 'x'",
        "  actual:   header 'X-Case': 42; header 'Route': absent"]
    with pytest.raises(StepFailed, match="no received INVITE to check headers on"):
        Phone.assert_headers(None, {"X-Case": "42"}, "INVITE")


def test_codec_names_compare_by_name_and_clock_rate() -> None:
    assert codec_matches("PCMA", "PCMA") and codec_matches("pcma/8000", "PCMA")
    assert not codec_matches("PCMU", "PCMA") and not codec_matches("PCMA", None)


# --- collection refusals ------------------------------------------------------------------


@pytest.mark.parametrize("node, field, words", [
    (event("n", "TIMEOUT", "a", absent=True), "data.absent", "means nothing on TIMEOUT"),
    (event("n", "TIMEOUT", "a", expectHeaders={"To": "x"}), "data.expectHeaders",
     "means nothing on TIMEOUT"),
    (event("n", "RINGING", "a", absent=True, expectHeaders={"To": "x"}), "data.expectHeaders",
     "keep one"),
    (command("n", "SendDTMF", "a", digits="1", headers={"X-A": "1"}), "data.headers",
     "need method 'info'"),
    (event("n", "RINGING", "a", expectHeaders={"X-A": "(("}), "data.expectHeaders",
     "invalid regular expression '(('"),
    (command("n", "Hold", "a", headers={"X A": "1"}), "data.headers", "invalid header name"),
])
def test_checks_that_cannot_happen_are_refused_naming_node_and_field(
        node: dict[str, Any], field: str, words: str) -> None:
    doc = json.loads(scenario([instance("a", "100"), node], chain("a", "n")))
    with pytest.raises(ScenarioFormatError) as info:
        graph.from_value(doc, "x.sipflow.json")
    assert f"node 'n', field '{field}'" in str(info.value) and words in str(info.value)


def test_expect_headers_are_compiled_by_sip_checks() -> None:
    doc = json.loads(scenario([instance("a", "100"), event("n", "RINGING", "a", expectHeaders={
        "f": "Alice", "Route": {"absent": True}, "To": {"notMatch": "x"}})], chain("a", "n")))
    checks = graph.from_value(doc).steps["n"].data.expect_headers
    assert [(c.header, c.kind) for c in checks] == [("f", "match"), ("Route", "absent"),
                                                    ("To", "notMatch")]


# --- must-fail files through pytester -------------------------------------------------------

EXPECTED_FAILURES = {
    "header-mismatch": [
        "*failing node: 'bob-rings' (instance 'bob', INCOMING)",
        "*reason: 4 header checks failed on INVITE sip:200@127.0.0.1:*",
        "*expected: header 'X-Case' to match '^43$'; header 'P-Asserted-Identity' absent; "
        "header 'f' to match 'Mallory'; header 'Request-URI' to match '^sip:999@'",
        "*actual:   header 'X-Case': 42; header 'P-Asserted-Identity': \"Alice\" "
        "<sip:100@example.com>; header 'f': \"Alice\" <sip:100@127.0.0.1*>;tag=*; "
        "header 'Request-URI': sip:200@127.0.0.1:*",
    ],
    "busy-expected-answered": [
        "*failing node: 'alice-dial' (instance 'alice', MakeCall)",
        "*reason: call to sip:200@127.0.0.1:*: expected 486, actual 200 OK",
        "*expected: final response 486", "*actual:   200 OK",
    ],
    "rings-but-must-not": [
        "*failing node: 'bob-silent' (instance 'bob', INCOMING)",
        "*reason: INCOMING happened but must not: incoming \"Alice\" <sip:100@127.0.0.1*>, "
        "* ms after the node started",
        "*expected: no INCOMING within 3000 ms",
    ],
    "wrong-codec": [
        "*failing node: 'alice-up' (instance 'alice', CONNECTED)",
        "*reason: negotiated codec is PCMA, expected PCMU",
        "*expected: PCMU", "*actual:   PCMA",
    ],
}


@pytest.mark.parametrize("name", sorted(EXPECTED_FAILURES))
def test_must_fail_file_fails_with_its_text(sipflow_pytester: pytest.Pytester, name: str) -> None:
    text = (MUST_FAIL / f"{name}.must-fail.json").read_text(encoding="utf-8")
    sipflow_pytester.makefile(".sipflow.json", **{name: text})
    result = sipflow_pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(EXPECTED_FAILURES[name])


# --- engine runs: what a pass/fail alone cannot show ---------------------------------------


@pytest.fixture(scope="module")
def pool() -> Iterator[AgentPool]:
    yield from own_pool(13000, 7, "checks")


def test_unexpected_answer_is_released(pool: AgentPool) -> None:
    g = graph.load(MUST_FAIL / "busy-expected-answered.must-fail.json")
    result = run_scenario(g, pool)
    assert result.state == "failed"
    sent = [r["summary"] for r in result.sip_messages if r["instance"] == "alice" and r["dir"] == "tx"]
    assert any(s.startswith("BYE ") for s in sent), sent


def test_absent_completes_after_its_timeout(pool: AgentPool) -> None:
    g = graph.load(CHECKS / "must-not-ring.sipflow.json")
    result = run_scenario(g, pool)
    assert result.state == "completed", result.failure
    silent = result.nodes["carol-silent"]
    assert silent.state == "completed"
    assert silent.duration is not None and silent.duration >= 1.0
    stays = result.nodes["bob-stays"]
    assert stays.state == "completed" and stays.duration is not None and stays.duration >= 0.3


def test_headers_went_out_on_every_command(pool: AgentPool) -> None:
    result = run_scenario(graph.load(CHECKS / "headers-round-trip.sipflow.json"), pool)
    assert result.state == "completed", result.failure
    sent = {parse(r["text"]).start_line.split()[0] + " " + (parse(r["text"]).headers.get("X-Step") or "")
            for r in result.sip_messages if r["dir"] == "tx" and r["instance"] == "alice"}
    assert {"INVITE hold", "INVITE retrieve", "INFO dtmf"} <= sent, sent


# --- the Python API ---------------------------------------------------------------------------


def test_python_api_headers_connected_and_message(sip_instance) -> None:  # type: ignore[no-untyped-def]
    alice = sip_instance("alice", dn="100")
    bob = sip_instance("bob", dn="200", codecs=["PCMA"])
    call = alice.call(bob, headers={"X-Case": "7", "P-Asserted-Identity": "<sip:100@x>"})
    incoming = bob.wait_incoming()
    assert incoming.last_message is not None and incoming.last_message.method == "INVITE"
    incoming.assert_headers({"X-Case": "^7$", "f": "sip:100@", "Request-URI": "^sip:200@",
                             "Route": {"absent": True}})
    with pytest.raises(AssertionError) as info:
        incoming.assert_headers({"X-Case": "^8$"})
    assert str(info.value).splitlines()[1:] == [
        "  expected: header 'X-Case' to match '^8$'", "  actual:   header 'X-Case': 7"]
    incoming.answer()
    assert call.wait_connected(expected_codec="PCMA") == "PCMA"
    assert incoming.wait_connected() == "PCMA"
    with pytest.raises(AssertionError, match="negotiated codec is PCMA, expected PCMU"):
        call.wait_connected(expected_codec="PCMU")
    assert alice.send_message(bob, "order 4711", headers={"X-Order": "4711"}) == 200
    got = bob.wait_message(expected_body=r"order \d+", headers={"X-Order": "^4711$"})
    assert got.body == "order 4711"
    bob.assert_headers(got, {"c": "text/plain"})
    call.release()
    assert incoming.wait_disconnected()[0] == 200
