"""The per-item JSON document: shape, masking, file names."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from pytest_sipflow.engine.events import ActionLogEvent, NodeStateEvent, ScenarioStateEvent
from pytest_sipflow.engine.result import Failure, NodeRun, ScenarioResult
from pytest_sipflow.reporting.results_json import (VERSION, dumps, file_name, result_document,
                                                   write_result_json)

from sipflows import T0, busy_call


def busy_result() -> ScenarioResult:
    result = ScenarioResult("Bob is busy", "busy.sipflow.json", state="failed", duration=1.02)
    result.nodes["dial"] = NodeRun("dial", "alice", "alice", "command", "MakeCall", "call-1",
                                   "failed", 0.0, 1.014, "486 Busy Here")
    result.nodes["ring"] = NodeRun("ring", "bob", "bob", "event", "INCOMING", "call-1",
                                   "completed", 0.0, 0.001)
    result.paths = {"alice": ["dial"], "bob": ["ring"]}
    result.failure = Failure("call to sip:200@127.0.0.1:5064 failed: 486 Busy Here", "dial",
                             "alice", "MakeCall", "2xx final response", "486 Busy Here")
    result.events = [
        ScenarioStateEvent("Bob is busy", "running", T0),
        NodeStateEvent("Bob is busy", "dial", "alice", "pending", "running", T0),
        ActionLogEvent("Bob is busy", "dial", "alice", "-> INVITE sip:200@127.0.0.1:5064 SIP/2.0",
                       "sip", T0, "INVITE sip:200@127.0.0.1:5064 SIP/2.0"),
    ]
    result.sip_messages = list(reversed(busy_call()))
    return result


def test_document_shape() -> None:
    doc = result_document(busy_result(), "scenarios/busy.sipflow.json::Bob is busy")
    assert list(doc) == ["version", "item", "scenario", "outcome", "duration", "state",
                         "failure", "paths", "nodes", "events", "messages", "media",
                         "recordings"]
    assert doc["media"] == {}  # no node checked media: no statistics were taken
    assert (doc["version"], doc["scenario"], doc["outcome"], doc["duration"]) == (
        VERSION, "Bob is busy", "failed", 1.02)
    assert doc["nodes"]["dial"] == {"state": "failed", "started": 0.0, "ended": 1.014,
                                    "message": "486 Busy Here", "instance": "alice",
                                    "kind": "command", "name": "MakeCall", "callId": "call-1"}
    assert doc["failure"]["actual"] == "486 Busy Here"
    assert [e["type"] for e in doc["events"]] == ["scenario-state", "node-state", "action-log"]
    assert doc["events"][2]["sipMessage"] == "INVITE sip:200@127.0.0.1:5064 SIP/2.0"
    assert doc["messages"] == busy_call()  # time order, the record dicts unchanged
    assert json.loads(dumps(doc)) == doc


def test_outcome_and_duration_from_pytest_win() -> None:
    doc = result_document(busy_result(), "x", outcome="error", duration=3.5)
    assert (doc["outcome"], doc["duration"]) == ("error", 3.5)
    passed = ScenarioResult("ok", "ok.sipflow.json", state="completed")
    assert result_document(passed, "y")["outcome"] == "passed"
    assert result_document(passed, "y")["failure"] is None


def test_secrets_masked_everywhere_including_raw_bytes() -> None:
    result = busy_result()
    result.failure = Failure("bad password hunter2", "dial", detail=("stderr: hunter2",))
    result.sip_messages = [dict(m, text=m["text"].replace("Alice", "hunter2")) for m in busy_call()]
    for m in result.sip_messages:
        m["raw"] = ""  # raw re-encoded from text by the record
    text = dumps(result_document(result, "x", secrets=["hunter2", "Alice"]))
    assert "hunter2" not in text and "Alice" not in text and "*****" in text
    for m in json.loads(text)["messages"]:
        assert b'From: "*****"' in base64.b64decode(m["raw"])


def test_messages_not_yet_in_record_shape_are_kept() -> None:
    result = busy_result()
    result.sip_messages = [{"dir": "tx", "t": 1.0, "summary": "INVITE x", "peer": "UDP 1.2.3.4:5"}]
    assert result_document(result, "x")["messages"] == result.sip_messages


def test_file_name_and_write(tmp_path: Path) -> None:
    assert file_name("scenarios/busy.sipflow.json::Bob is busy") == (
        "scenarios_busy.sipflow.json__Bob_is_busy.json")
    assert file_name("t.py::test[a/b]") == "t.py__test_a_b.json"
    path = write_result_json(tmp_path / "out", result_document(busy_result(), "t.py::test_x"))
    assert Path(path) == tmp_path / "out" / "t.py__test_x.json"
    assert json.loads(Path(path).read_text())["item"] == "t.py::test_x"
