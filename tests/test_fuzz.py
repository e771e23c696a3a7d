"""Property-based: random and mutated graphs never crash the loader or the engine."""

from __future__ import annotations

import json
import warnings
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import basic_call, own_pool
from pytest_sipflow.format import graph, parse, schema
from pytest_sipflow.engine.runner import EngineSettings, run_scenario
from pytest_sipflow.errors import ScenarioFormatError, SipflowWarning
from pytest_sipflow.agent.pool import AgentPool

# Strings that exercise the format's own syntax: references, regexes, header text.
tricky_text = st.sampled_from(["${X}", "${X:-d}", "${", "${1}", "$$", "${X:-${Y}}", "((", "a\r\nb",
                               "X Tag", "", "Failure", "tcp", "SCTP", "${SIPFLOW_WORKER}"])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False)
    | st.text(max_size=8) | tricky_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12)

KEYS = ["id", "type", "data", "command", "event", "sipInstanceId", "callId", "timeout",
        "targetUri", "number", "digits", "statusCode", "source", "target", "sourceHandle",
        "expectedDigit", "primaryCallId", "consultCallId", "filePath", "dn", "headers",
        "expectHeaders", "absent", "password", "authUser", "pbxTransport", "pbxHost",
        "expectedStatusCode", "expectedBody", "branchType", "label", "expectedDigts", "markers"]
NAMES = list(schema.COMMANDS) + list(schema.EVENTS) + ["sipInstance", "command", "event", "x"]
IDS = ["a", "b", "call", "talk", "bye", "in", "answer", "gone", "zzz"]


@st.composite
def mutated_docs(draw: st.DrawFn) -> dict[str, Any]:
    doc = json.loads(basic_call())
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["set", "drop", "edge", "node", "rename"]))
        node = draw(st.sampled_from(doc["nodes"])) if doc["nodes"] else None
        if kind == "set" and node is not None:
            target = node["data"] if draw(st.booleans()) and isinstance(node.get("data"), dict) else node
            target[draw(st.sampled_from(KEYS))] = draw(json_values | st.sampled_from(NAMES + IDS))
        elif kind == "drop" and node is not None and node:
            node.pop(draw(st.sampled_from(sorted(node))), None)
        elif kind == "edge":
            doc["edges"].append({"source": draw(st.sampled_from(IDS)), "target": draw(st.sampled_from(IDS)),
                                 "sourceHandle": draw(st.sampled_from(["success", "failure", None]))})
        elif kind == "node":
            doc["nodes"].append({"id": draw(st.sampled_from(IDS)), "type": draw(st.sampled_from(NAMES)),
                                 "data": {"command": draw(st.sampled_from(NAMES)),
                                          "event": draw(st.sampled_from(NAMES)),
                                          "sipInstanceId": draw(st.sampled_from(IDS)),
                                          "callId": draw(st.sampled_from(["c", "x"])),
                                          "timeout": draw(st.integers(0, 150))}})
        elif kind == "rename" and node is not None:
            node["id"] = draw(st.sampled_from(IDS))
    return doc


STEP_DATA: list[tuple[str, str, dict[str, Any]]] = [
    ("command", "MakeCall", {"targetUri": "200"}), ("command", "MakeCall", {"targetUri": "100"}),
    ("command", "MakeCall", {"targetUri": "999"}), ("command", "Answer", {}),
    ("command", "Response", {"statusCode": 486}), ("command", "Response", {"statusCode": 180}),
    ("command", "Release", {}), ("command", "Hold", {}), ("command", "Retrieve", {}),
    ("command", "SendDTMF", {"digits": "1#", "intervalMs": 20}),
    ("command", "BlindTransfer", {"targetUri": "300"}),
    ("event", "INCOMING", {}), ("event", "RINGING", {}), ("event", "DISCONNECTED", {}),
    ("event", "TIMEOUT", {}), ("event", "HELD", {}), ("event", "DTMFReceived", {"expectedDigit": "1"}),
    ("event", "TRANSFERRED", {}),
]


@st.composite
def valid_docs(draw: st.DrawFn) -> dict[str, Any]:
    """Graphs that load, with random operations in random order on random calls."""
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, Any]] = []
    for ua, dn in (("a", "100"), ("b", "200"), ("c", "300"))[: draw(st.integers(2, 3))]:
        nodes.append({"id": ua, "type": "sipInstance", "data": {"dn": dn}})
        previous = ua
        for i in range(draw(st.integers(1, 4))):
            kind, name, data = draw(st.sampled_from(STEP_DATA))
            node_id = f"{ua}{i}"
            body = {"command" if kind == "command" else "event": name, "sipInstanceId": ua,
                    "callId": draw(st.sampled_from(["c", "d"])), "timeout": draw(st.integers(0, 200)),
                    **data}
            nodes.append({"id": node_id, "type": kind, "data": body})
            handle = "failure" if previous != ua and draw(st.booleans()) else "success"
            edges.append({"source": previous, "target": node_id, "sourceHandle": handle})
            previous = node_id
    return {"nodes": nodes, "edges": edges}


def load_quietly(value: Any) -> graph.Graph | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SipflowWarning)
        try:
            return graph.from_value(value, "fuzz.sipflow.json")
        except ScenarioFormatError as exc:
            assert str(exc).startswith("fuzz.sipflow.json: invalid sipflow scenario")
            return None


@settings(max_examples=300, deadline=None)
@given(json_values | mutated_docs())
def test_loader_only_raises_its_own_errors(value: Any) -> None:
    load_quietly(value)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200) | st.binary(max_size=100).map(lambda b: b.decode("latin-1")))
def test_text_parser_only_raises_its_own_errors(text: str) -> None:
    try:
        value = parse.parse_text(text, "fuzz.sipflow.json")
    except ScenarioFormatError:
        return
    load_quietly(value)


def mangle(raw: bytes, draw: st.DrawFn) -> bytes:
    """A few random byte edits of a valid file: flips, cuts, insertions."""
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(0, len(data) - 1)))
        kind = draw(st.sampled_from(["flip", "cut", "insert"]))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[at:at + draw(st.integers(1, 40))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(
                [b"\xef\xbb\xbf", b"[" * 3000, b"\xff", b"${", b"1" * 5000]))
    return bytes(data)


@st.composite
def file_bytes(draw: st.DrawFn) -> bytes:
    """Random bytes, or a valid file with a few bytes changed."""
    if draw(st.booleans()):
        return draw(st.binary(max_size=200))
    return mangle(basic_call().encode(), draw)


@settings(max_examples=200, deadline=None)
@given(file_bytes())
def test_random_and_mangled_file_bytes_only_raise_format_errors(raw: bytes) -> None:
    try:
        value = parse.parse_text(parse.decode(raw, "fuzz.sipflow.json"), "fuzz.sipflow.json")
    except ScenarioFormatError:
        return
    load_quietly(value)


@settings(max_examples=150, deadline=None)
@given(mutated_docs(), st.text(st.characters(codec="utf-8", exclude_characters="${}"),
                               min_size=8, max_size=20),
       st.dictionaries(st.sampled_from(["X", "Y", "PW", "SIPFLOW_WORKER"]), st.text(max_size=5)))
@example(doc={"nodes": [{"id": "a", "type": "sipInstance", "data": {"dn": "100"}},
                        {"id": "call", "type": "command"}], "edges": []},
         secret="Response", env={})  # a command name: in the message whatever the password
def test_a_password_never_leaks_from_a_broken_file(doc: dict[str, Any], secret: str,
                                                   env: dict[str, str]) -> None:
    if secret in json.dumps(doc, ensure_ascii=False):
        return  # the secret must be findable only through the password
    doc["nodes"][0].setdefault("data", {})
    if not isinstance(doc["nodes"][0]["data"], dict):
        return
    doc["nodes"][0]["data"]["password"] = secret
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SipflowWarning)
        try:
            g = graph.from_value(doc, "fuzz.sipflow.json", graph.LoadOptions(env=env))
        except ScenarioFormatError as exc:
            if secret in str(exc) + repr(exc.problems):
                # A word the message has anyway (hypothesis drew 'Response', which the list
                # of command names holds) is no leak: with another password it is there too.
                doc["nodes"][0]["data"]["password"] = "-" * len(secret)
                assert secret in _format_error(doc, env), "the password leaked"
            return
    assert secret not in repr(g)


def _format_error(doc: dict[str, Any], env: dict[str, str]) -> str:
    try:
        graph.from_value(doc, "fuzz.sipflow.json", graph.LoadOptions(env=env))
    except ScenarioFormatError as exc:
        return str(exc) + repr(exc.problems)
    return ""


@pytest.fixture(scope="module")
def pool() -> Iterator[AgentPool]:
    yield from own_pool(13400, 8, "fuzz")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.filter_too_much])
@given(valid_docs() | mutated_docs())
def test_engine_survives_random_graphs(pool: AgentPool, doc: dict[str, Any]) -> None:
    g = load_quietly(doc)
    if g is None:
        return
    result = run_scenario(g, pool, EngineSettings(event_timeout_ms=150, scenario_timeout_ms=3000))
    assert result.state in ("completed", "failed")
    assert all(n.state in ("completed", "failed", "cancelled", "skipped") for n in result.nodes.values())
    if result.state == "failed":
        assert result.failure is not None and result.failure.reason
        assert not result.failure.reason.startswith("internal error"), result.failure
