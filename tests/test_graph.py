"""Unit tests of loading and graph building: every refusal of spec §5, no SIP needed."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import REPO, basic_call, chain, command, event, instance, scenario
from pytest_sipflow.format import graph
from pytest_sipflow.errors import ScenarioFormatError, SipflowWarning


def write(tmp_path: Path, text: str, name: str = "x.sipflow.json") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def mutated(change: Callable[[dict[str, Any]], None]) -> str:
    doc = json.loads(basic_call())
    change(doc)
    return json.dumps(doc, indent=1)


def node(doc: dict[str, Any], node_id: str) -> dict[str, Any]:
    return next(n for n in doc["nodes"] if n["id"] == node_id)


REFUSALS = {
    "bad json": ('{"nodes": [\n  {"id": "a",,}\n]}', None, None, "line 2, column"),
    "unknown type": (mutated(lambda d: node(d, "talk").update(type="sleep")),
                     "talk", "type", "allowed: sipInstance, command, event"),
    "unknown command": (mutated(lambda d: node(d, "bye")["data"].update(command="HangUp")),
                        "bye", "command", "allowed: MakeCall"),
    "unknown event": (mutated(lambda d: node(d, "gone")["data"].update(event="BYE")),
                      "gone", "event", "allowed: INCOMING"),
    "unknown instance": (mutated(lambda d: node(d, "answer")["data"].update(sipInstanceId="c")),
                         "answer", "data.sipInstanceId", "unknown sipInstanceId 'c'"),
    "number without dn": (mutated(lambda d: node(d, "in")["data"].update(number="999")),
                          "in", "data.number", "'999' matches no sipInstance dn"),
    "edge to missing node": (mutated(lambda d: d["edges"].append(
        {"id": "ex", "source": "bye", "target": "nowhere"})), "nowhere", "target", "missing node"),
    "edge from missing node": (mutated(lambda d: d["edges"].append(
        {"id": "ex", "source": "ghost", "target": "bye"})), "ghost", "source", "missing node"),
    "two success edges": (mutated(lambda d: d["edges"].append(
        {"id": "ex", "source": "call", "target": "bye"})), "call", "sourceHandle", "two success"),
    "two failure edges": (mutated(lambda d: d["edges"].extend([
        {"id": "f1", "source": "call", "target": "bye", "sourceHandle": "failure"},
        {"id": "f2", "source": "call", "target": "talk", "data": {"branchType": "failure"}}])),
        "call", "sourceHandle", "two failure"),
    "cycle": (mutated(lambda d: d["edges"].append({"id": "ex", "source": "bye", "target": "talk"})),
              "bye", "edges", "cycle talk -> bye -> talk"),
    "no instance": (scenario([command("x", "Hold", None)], []), None, "nodes", "no sipInstance"),
    "bad dtmf digit": (mutated(lambda d: d["nodes"].append(
        command("dtmf", "SendDTMF", "a", digits="12x"))), "dtmf", "data.digits",
        "invalid DTMF digit(s) 'X'"),
    "bad expected digit": (mutated(lambda d: d["nodes"].append(
        event("dr", "DTMFReceived", "a", expectedDigit="E"))), "dr", "data.expectedDigit",
        "invalid DTMF"),
    "negative timeout": (mutated(lambda d: node(d, "in")["data"].update(timeout=-1)),
                         "in", "data.timeout", "greater than or equal to 0"),
    "missing target": (mutated(lambda d: node(d, "call")["data"].pop("targetUri")),
                       "call", "data.targetUri", "required field is missing"),
    "response code": (mutated(lambda d: d["nodes"].append(
        command("r", "Response", "b", statusCode=99))), "r", "data.statusCode", "99"),
    "node without id": (mutated(lambda d: d["nodes"].append({"type": "event", "data": {}})),
                        "nodes[8]", "id", "required"),
    "edge into instance": (mutated(lambda d: d["edges"].append(
        {"id": "ex", "source": "bye", "target": "b"})), "b", "target", "points at a sipInstance"),
    "node on two chains": (mutated(lambda d: d["edges"].append(
        {"id": "ex", "source": "b", "target": "talk"})), "talk", "edges", "both"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refusal_names_file_node_and_field(tmp_path: Path, case: str) -> None:
    text, node_id, field, words = REFUSALS[case]
    path = write(tmp_path, text)
    with pytest.raises(ScenarioFormatError) as info:
        graph.load(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    if node_id is not None:
        assert f"node {node_id!r}" in message, message
    if field is not None:
        assert f"field {field!r}" in message, message
    assert words in message, message
    assert "Traceback" not in message and "pydantic" not in message, message


def test_flowdata_with_bad_json_names_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps({"name": "x", "flowData": "{oops"}))
    with pytest.raises(ScenarioFormatError, match=r"field 'flowData': bad JSON inside flowData"):
        graph.load(path)


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    def break_twice(d: dict[str, Any]) -> None:
        node(d, "bye")["data"]["command"] = "HangUp"
        node(d, "in")["data"]["timeout"] = -5
    with pytest.raises(ScenarioFormatError) as info:
        graph.load(write(tmp_path, mutated(break_twice)))
    assert len(info.value.problems) == 2
    assert "node 'bye'" in str(info.value) and "node 'in'" in str(info.value)


def test_unreachable_node_is_a_warning_and_is_kept_out_of_chains(tmp_path: Path) -> None:
    text = mutated(lambda d: d["nodes"].append(event("lonely", "TIMEOUT", "a", timeout=1)))
    with pytest.warns(SipflowWarning, match="node 'lonely' is reachable from no sipInstance"):
        g = graph.load(write(tmp_path, text))
    assert g.unreachable == ["lonely"]
    assert g.steps["lonely"].chain == ""


def test_editor_wrapper_and_plain_form_build_the_same_graph(tmp_path: Path) -> None:
    plain = json.loads(basic_call())
    wrapped = {"name": "wrapped", "flowData": json.dumps(plain)}
    a = graph.load(write(tmp_path, json.dumps(plain), "a.sipflow.json"))
    b = graph.load(write(tmp_path, json.dumps(wrapped), "b.sipflow.json"))
    assert b.name == "wrapped" and a.name == "a"
    assert {k: (s.success, s.failure, s.instance) for k, s in a.steps.items()} == \
        {k: (s.success, s.failure, s.instance) for k, s in b.steps.items()}


def test_editor_keys_and_aliases_are_accepted() -> None:
    nodes = [{**instance("a", 100, color="#3b82f6", pbxInstanceId=""), "selected": True,
              "width": 120, "measured": {"width": 120}},
             instance("b", "200"),
             command("t", "AttendedTransfer", "a", primaryCallId="p", consultCallId="c"),
             event("h", "HoldEvent", "b", callId="p"),
             event("n", "INCOMING", None, number=200)]
    edges = chain("a", "t") + chain("b", "h") + [
        {"id": "x", "source": "h", "target": "n", "sourceHandle": "success", "animated": True}]
    g = graph.from_value(json.loads(scenario(nodes, edges)))
    assert g.steps["t"].name == "MuteTransfer"
    assert g.steps["h"].name == "HELD"
    assert g.steps["n"].instance == "b", "INCOMING by number takes the dn's owner"
    assert g.instances["a"].data.dn == "100"


def test_node_without_instance_takes_its_chain_instance() -> None:
    nodes = [instance("a", "100"), event("wait", "TIMEOUT", None, timeout=1)]
    g = graph.from_value(json.loads(scenario(nodes, chain("a", "wait"))))
    assert g.steps["wait"].instance == "a" and g.steps["wait"].chain == "a"


def test_branches_and_defaults() -> None:
    g = graph.load(REPO / "scenarios" / "busy-failure-branch.sipflow.json")
    make = g.steps["alice-calls-bob"]
    assert (make.success, make.failure) == ("unexpected-answer", "busy-is-expected")
    assert g.steps["bob-rings"].data.timeout is None, "no timeout: the run's default applies"
    assert g.steps["bob-rings"].call_id == "call"
    assert g.instances["alice"].data.auto_ringing is True
    assert g.instances["alice"].starts == ["alice-calls-bob"]


def test_bundled_scenarios_load_without_warnings() -> None:
    files = sorted((REPO / "scenarios").rglob("*.sipflow.json"))
    assert len(files) >= 4
    # real-mode files take the test registrar's address and passwords from the environment
    env = dict(os.environ, SIPFLOW_TEST_REGISTRAR_HOST="127.0.0.1", SIPFLOW_TEST_UDP_PORT="1",
               SIPFLOW_TEST_TCP_PORT="1", SIPFLOW_TEST_TLS_PORT="2",
               SIPFLOW_TEST_WRONG_PASSWORD="wrong",
               SIPFLOW_TEST_PORT_udp="1", SIPFLOW_TEST_PORT_tcp="1", SIPFLOW_TEST_PORT_tls="2",
               **{f"PBX_PW_100{i}": "pw" for i in range(1, 10)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path in files:  # a parametrized file: every combination
            graph.load_all(path, graph.LoadOptions(env=env))


def test_command_or_event_name_of_the_wrong_type_is_refused() -> None:
    # found by hypothesis: a list as the event name used to raise TypeError
    doc = json.loads(basic_call())
    node(doc, "talk")["data"]["event"] = []
    with pytest.raises(ScenarioFormatError, match=r"node 'talk', field 'event': unknown event \[\]"):
        graph.from_value(doc, "x.sipflow.json")

