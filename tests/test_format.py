"""The strict format: refusals of spec §5, ``${NAME}`` values of §6, markers. No SIP needed."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import REPO, basic_call, chain, command, event, instance, scenario
from pytest_sipflow.format import graph, parse, schema
from pytest_sipflow.errors import ScenarioFormatError, SipflowWarning

Doc = dict[str, Any]


def doc_with(change: Callable[[Doc], Any]) -> Doc:
    doc = json.loads(basic_call())
    change(doc)
    return doc


def node(doc: Doc, node_id: str) -> Doc:
    return next(n for n in doc["nodes"] if n["id"] == node_id)


def data(doc: Doc, node_id: str) -> Doc:
    return node(doc, node_id)["data"]


def edge(doc: Doc, source: str) -> Doc:
    return next(e for e in doc["edges"] if e["source"] == source)


def set_data(node_id: str, **values: Any) -> Callable[[Doc], None]:
    """Change: update the data of one node."""
    return lambda d: data(d, node_id).update(values)


def set_edge(source: str, **values: Any) -> Callable[[Doc], None]:
    """Change: update the edge leaving ``source``."""
    return lambda d: edge(d, source).update(values)


def add(*nodes: Doc) -> Callable[[Doc], None]:
    """Append nodes (reached from nothing: a warning, which load() below ignores)."""
    return lambda d: d["nodes"].extend(nodes)


def load(doc: Doc | str, **options: Any) -> graph.Graph:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SipflowWarning)
        if isinstance(doc, str):
            doc = json.loads(doc)
        return graph.from_value(doc, "x.sipflow.json", graph.LoadOptions(**options))


def refusal(doc: Doc, **options: Any) -> str:
    with pytest.raises(ScenarioFormatError) as info:
        load(doc, **options)
    return str(info.value)


# --- refusals: (change, node, field, words) ----------------------------------------------

REFUSALS: dict[str, tuple[Callable[[Doc], Any], str | None, str, str]] = {
    "typo in a key": (add(event("dr", "DTMFReceived", "b", expectedDigts="999")),
                      "dr", "data.expectedDigts",
                      "unknown key 'expectedDigts'; did you mean 'expectedDigits'?"),
    "snake_case key": (set_data("call", target_uri="200"),
                       "call", "data.target_uri", "did you mean 'targetUri'?"),
    "key of another node type": (set_data("in", digits="1"),
                                 "in", "data.digits", "unknown key 'digits'"),
    "instance key typo": (set_data("a", pbxHots="pbx"),
                          "a", "data.pbxHots", "did you mean 'pbxHost'?"),
    "sourceHandle case": (set_edge("call", sourceHandle="Failure"),
                          "call", "sourceHandle", "did you mean 'failure'?"),
    "sourceHandle word": (set_edge("call", sourceHandle="error"),
                          "call", "sourceHandle", "names no branch"),
    "branchType": (set_edge("call", data={"branchType": "fail"}),
                   "call", "data.branchType", "did you mean 'failure'?"),
    "handle against branchType": (set_edge("call", sourceHandle="success",
                                           data={"branchType": "failure"}),
                                  "call", "sourceHandle", "contradicts branchType 'failure'"),
    "missing command": (lambda d: data(d, "call").pop("command"),
                        "call", "command", "the command key is missing"),
    "missing event": (lambda d: data(d, "in").pop("event"),
                      "in", "event", "the event key is missing"),
    "command typo": (set_data("call", command="MakeCal"),
                     "call", "command", "did you mean 'MakeCall'?"),
    "shared local dn": (set_data("b", dn="100"),
                        "b", "data.dn", "dn '100' is also the dn of 'a'"),
    "transport": (set_data("a", pbxTransport="SCTP"),
                  "a", "data.pbxTransport", "allowed: UDP, TCP, TLS"),
    "expectHeaders regex": (set_data("in", expectHeaders={"From": "(("}),
                            "in", "data.expectHeaders", "invalid regular expression '(('"),
    "notMatch regex": (set_data("in", expectHeaders={"To": {"notMatch": "[a"}}),
                       "in", "data.expectHeaders", "invalid regular expression '[a'"),
    "check shape": (set_data("in", expectHeaders={"To": {"absent": "yes"}}),
                    "in", "data.expectHeaders", '{"absent": true}'),
    "MESSAGE body regex": (add(event("m", "MESSAGE", "b", expectedBody="*x")),
                           "m", "data.expectedBody", "invalid regular expression"),
    "empty header name": (set_data("call", headers={"": "x"}),
                          "call", "data.headers", "invalid header name ''"),
    "header name with space": (set_data("call", headers={"X Tag": "x"}),
                               "call", "data.headers", "invalid header name 'X Tag'"),
    "header name with colon": (set_data("call", headers={"X-Tag:": "x"}),
                               "call", "data.headers", "without spaces, colons"),
    "header name with CRLF": (set_data("call", headers={"X\r\nY": "x"}),
                              "call", "data.headers", "invalid header name"),
    "header value with CRLF": (set_data("call", headers={"X-A": "1\r\nVia: x"}),
                               "call", "data.headers", "header 'X-A': the value contains a line break"),
    "header value not text": (set_data("call", headers={"X-A": 1}),
                              "call", "data.headers", "the value is a string"),
    "marker name": (lambda d: d.update(markers=["smoke", "not a name"]),
                    None, "markers", "'not a name' are not Python identifiers"),
    "unset variable": (set_data("a", password="${PBX_PW_1001}"),
                       "a", "data.password", "environment variable PBX_PW_1001 is not set"),
    "malformed reference": (set_data("call", targetUri="${TARGET"),
                            "call", "data.targetUri", "malformed environment reference '${TARGET'"),
    "reference in a default": (set_data("call", targetUri="${T:-2${W}0}"),
                               "call", "data.targetUri", "a default cannot contain a reference"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refusal_names_node_field_and_cause(case: str) -> None:
    change, node_id, field, words = REFUSALS[case]
    message = refusal(doc_with(change), env={})
    assert message.startswith("x.sipflow.json: invalid sipflow scenario"), message
    if node_id is not None:
        assert f"node {node_id!r}" in message, message
    assert f"field {field!r}" in message, message
    assert words in message, message
    assert "Traceback" not in message and "pydantic" not in message, message


def test_refused_file_is_named_when_loaded_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "typo.sipflow.json"
    path.write_text(json.dumps(doc_with(REFUSALS["typo in a key"][0])))
    with pytest.raises(ScenarioFormatError, match=re.escape(f"{path}: invalid sipflow scenario:"
                                                            " node 'dr'")):
        graph.load(path)


def test_a_broken_instance_gives_no_follow_up_unknown_instance_error() -> None:
    message = refusal(doc_with(lambda d: data(d, "b").update(codec=["PCMA"])))
    assert "did you mean 'codecs'?" in message
    assert "unknown sipInstanceId" not in message, message


# --- what stays accepted ------------------------------------------------------------------


def test_editor_keys_are_accepted_in_every_node_and_ignored() -> None:
    editor = {key: "x" for key in schema.EDITOR_KEYS}
    doc = doc_with(lambda d: [n["data"].update(editor) for n in d["nodes"]])
    for n in doc["nodes"]:  # XYFlow's own node keys, outside data
        n.update(position={"x": 1, "y": 2}, width=10, height=20, selected=False,
                 dragging=False, measured={"width": 10}, style={}, whatever=1)
    doc["edges"][0].update(animated=True, targetHandle="target", type="branch", style={})
    doc.update(version=3, viewport={"zoom": 1})
    g = load(doc)
    assert g.instances["a"].data.label == "x"  # label is also a format key


def test_the_editors_own_handle_and_branch_type_are_accepted() -> None:
    # The SIPFLOW editor names its one output handle "source" and puts the branch in data.
    doc = doc_with(lambda d: [e.update(sourceHandle="source", data={"branchType": "success"})
                              for e in d["edges"]])
    edge(doc, "call")["data"]["branchType"] = "failure"
    g = load(doc)
    assert g.steps["call"].failure == "talk" and g.steps["call"].success is None


@pytest.mark.parametrize("handle", [None, "", "success"])
def test_success_handles(handle: str | None) -> None:
    g = load(doc_with(lambda d: edge(d, "call").update(sourceHandle=handle)))
    assert g.steps["call"].success == "talk"


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.sipflow.json"
    path.write_bytes(b"\xef\xbb\xbf" + basic_call().encode())
    assert graph.load(path).name == "bom"


def test_every_key_of_the_spec_is_known() -> None:
    """A file using every key this version runs loads (real-mode keys only warn)."""
    nodes = [
        instance("a", "100", register=False, pbxHost="pbx.invalid", pbxPort=5061,
                 pbxTransport="tls", registerIntervalSeconds=60, codecs=["PCMA"],
                 authUser="1001", password="secret", realm="pbx", domain="example.com",
                 outboundProxy="sip:proxy.invalid;lr", autoRinging=False, pbxInstanceId="p1",
                 serverId="s1"),
        instance("b", "200", username="u"),
        command("call", "MakeCall", "a", callId="c", targetUri="200", timeout=100,
                headers={"X-Test": "1", "P-Asserted-Identity": "<sip:1@x>"}),
        command("ans", "Answer", "b", statusCode=200), command("resp", "Response", "b",
                                                               statusCode=180, reason="Ringing"),
        command("rel", "Release", "b", statusCode=486), command("hold", "Hold", "a"),
        command("ret", "Retrieve", "a"), command("bt", "BlindTransfer", "a", targetUser="300",
                                                 targetHost="127.0.0.1:5062"),
        command("mt", "AttendedTransfer", "a", primaryCallId="p", consultCallId="c"),
        command("dtmf", "SendDTMF", "a", digits="12*#ABCD", intervalMs=50, method="INFO"),
        command("play", "PlayAudio", "a", filePath="hello.wav"),
        event("in", "INCOMING", None, number="200"), event("ring", "RINGING", "a"),
        event("gone", "DISCONNECTED", "a"), event("wait", "TIMEOUT", "a", timeout=1),
        event("dr", "DTMFReceived", "b", expectedDigit="1"),
        event("drs", "DTMFReceived", "b", expectedDigits=1234),
        event("held", "HoldEvent", "b"), event("back", "RetrieveEvent", "b"),
        event("tr", "TransferEvent", "b"), event("n", "NOTIFY", "a", statusCode=100),
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        g = graph.from_value(json.loads(scenario(nodes, chain("a", "call"))), "all.sipflow.json")
    assert not [w for w in caught if "pbxHost" in str(w.message)], "real mode is implemented"
    a = g.instances["a"].data
    assert (a.username, a.pbx_transport, a.pbx_port) == ("1001", "TLS", "5061")
    assert a.password is not None and a.password.get_secret_value() == "secret"
    assert g.steps["call"].data.headers == {"X-Test": "1", "P-Asserted-Identity": "<sip:1@x>"}
    assert g.steps["dtmf"].data.method == "info"
    assert g.steps["drs"].data.expected == "1234"


# --- keys written with their default values ----------------------------------------------


def test_check_keys_written_with_their_defaults_load() -> None:
    g = load(doc_with(lambda d: (data(d, "in").update(absent=False, expectHeaders={}),
                                 data(d, "answer").update(headers={}))))
    assert g.steps["in"].data.absent is False


def test_make_call_headers_are_supported() -> None:
    g = load(doc_with(lambda d: data(d, "call").update(headers={"X-Case": "${CASE:-7}"})))
    assert g.steps["call"].data.headers == {"X-Case": "7"}


# --- local and real mode ------------------------------------------------------------------


def test_one_dn_twice_is_allowed_when_a_registrar_is_configured() -> None:
    g = load(doc_with(lambda d: data(d, "b").update(dn="100")), registrar_configured=True)
    assert {i.data.dn for i in g.instances.values()} == {"100"}


def test_one_dn_twice_is_allowed_for_instances_with_their_own_server() -> None:
    def real(d: Doc) -> None:
        data(d, "a").update(pbxHost="pbx.invalid")
        data(d, "b").update(dn="100", pbxHost="pbx.invalid")
    assert load(doc_with(real)).instances["b"].data.dn == "100"


# --- file-level failures ------------------------------------------------------------------

BAD_FILES: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "the file is empty"),
    "whitespace": (b" \n\t\n", "the file is empty"),
    "bom only": (b"\xef\xbb\xbf", "the file is empty"),
    "deep nesting": (b"[" * 100_000, "nested too deeply"),
    "latin-1": ('{"name": "Jos\u00e9"}'.encode("latin-1"), "not UTF-8 text (byte 0xe9 at offset 13)"),
    "huge number": (b'{"timeout": 1' + b"0" * 5000 + b"}", "a number has too many digits"),
    "empty flowData": (b'{"name": "x", "flowData": " "}', "field 'flowData': flowData is empty"),
    "bad json": (b'{"nodes": [\n  {"id": "a",,}\n]}', "line 2, column"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_file_level_failures_are_format_errors(tmp_path: Path, case: str) -> None:
    raw, words = BAD_FILES[case]
    path = tmp_path / "bad.sipflow.json"
    path.write_bytes(raw)
    with pytest.raises(ScenarioFormatError) as info:
        graph.load(path)
    assert str(info.value).startswith(f"{path}: invalid sipflow scenario"), info.value
    assert words in str(info.value), info.value


# --- environment values (§6) --------------------------------------------------------------


def test_variables_defaults_and_worker_are_expanded_everywhere_in_data() -> None:
    def use(d: Doc) -> None:
        data(d, "a").update(dn="1${SIPFLOW_WORKER}0", codecs=["${CODEC}", "PCMU"],
                            password="${PW}", realm="${REALM:-pbx}")
        data(d, "b").update(dn="2${SIPFLOW_WORKER}0", pbxPort="${PORT:-5070}")
        data(d, "call").update(targetUri="${TARGET:-sip:200@127.0.0.1}",
                               headers={"X-Run": "run-${RUN}", "X-Cost": "$5 and $$ and $HOME"})
    g = load(doc_with(use), env={"CODEC": "PCMA", "PW": "s3cret", "RUN": "42"}, worker=3)
    a, b = g.instances["a"].data, g.instances["b"].data
    assert (a.dn, b.dn, a.codecs, a.realm, b.pbx_port) == ("130", "230", ["PCMA", "PCMU"],
                                                             "pbx", "5070")
    assert a.password is not None and a.password.get_secret_value() == "s3cret"
    call = g.steps["call"].data
    assert call.headers == {"X-Run": "run-42", "X-Cost": "$5 and $$ and $HOME"}
    assert call.target_uri == "sip:200@127.0.0.1"


@pytest.mark.parametrize(("env", "worker", "expected"), [
    ({}, None, "0"), ({"PYTEST_XDIST_WORKER": "gw3"}, None, "3"),
    ({"PYTEST_XDIST_WORKER": "gw3"}, 5, "5"), ({"SIPFLOW_WORKER": "9"}, 1, "1"),
])
def test_sipflow_worker_is_always_defined(env: dict[str, str], worker: int | None,
                                          expected: str) -> None:
    g = load(doc_with(lambda d: data(d, "a").update(dn="${SIPFLOW_WORKER}")), env=env,
             worker=worker)
    assert g.instances["a"].data.dn == expected


def test_the_command_name_may_come_from_the_environment_too() -> None:
    g = load(doc_with(set_data("bye", command="${HANG_UP:-Release}")), env={})
    assert g.steps["bye"].name == "Release"


def test_an_empty_variable_takes_the_default_as_in_the_shell() -> None:
    g = load(doc_with(lambda d: data(d, "call").update(targetUri="${T:-200}")), env={"T": ""})
    assert g.steps["call"].data.target_uri == "200"


def test_every_unset_variable_is_named_with_its_node_and_field() -> None:
    def use(d: Doc) -> None:
        data(d, "a").update(password="${PBX_PW_1001}")
        data(d, "call").update(headers={"X-A": "${A}"}, targetUri="${B}")
    message = refusal(doc_with(use), env={"B": "200"})
    assert "node 'a', field 'data.password': environment variable PBX_PW_1001 is not set" \
        in message
    assert "node 'call', field 'data.headers.X-A': environment variable A is not set" in message


SECRET = "Pa55-w0rd-that-must-not-leak"


@pytest.mark.parametrize("password", [
    SECRET, "${PW}", f"{SECRET}${{", f"${{{SECRET}", [SECRET], {"v": SECRET}])
def test_a_password_never_appears_in_errors_or_reprs(password: Any) -> None:
    def use(d: Doc) -> None:
        data(d, "a").update(password=password, pasword=SECRET)  # a typo'd key too
    with pytest.raises(ScenarioFormatError) as info:
        load(doc_with(use), env={"PW": SECRET})
    assert "field 'data.pasword'" in str(info.value)
    for text in (str(info.value), repr(info.value), repr(info.value.problems)):
        assert SECRET not in text, text


def test_a_loaded_password_is_hidden_in_every_repr() -> None:
    doc = doc_with(lambda d: data(d, "a").update(password="${PW}"))
    g = load(doc, env={"PW": SECRET})
    assert g.instances["a"].data.password is not None
    parsed = parse.parse_document(doc, "x.sipflow.json")
    for text in (repr(g), str(g), repr(g.instances), repr(g.instances["a"].data),
                 str(g.instances["a"].data), repr(parsed), repr(parsed.nodes[0])):
        assert SECRET not in text, text


# --- collection through pytest ------------------------------------------------------------


def test_broken_file_is_a_collection_error_and_the_good_one_still_collects(
        sipflow_pytester: pytest.Pytester) -> None:
    broken = doc_with(REFUSALS["typo in a key"][0])
    sipflow_pytester.makefile(".sipflow.json", broken=json.dumps(broken), good=basic_call())
    result = sipflow_pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines([
        "*broken.sipflow.json: invalid sipflow scenario: node 'dr', field 'data.expectedDigts':"
        " unknown key 'expectedDigts'; did you mean 'expectedDigits'?*"])
    result.stdout.fnmatch_lines(["good.sipflow.json::good"])
    result.stdout.fnmatch_lines(["*1 test collected, 1 error*"])
    assert "Traceback" not in result.stdout.str()


def test_unset_variable_is_a_collection_error_naming_the_variable(
        sipflow_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIPFLOW_TEST_UNSET_PW", raising=False)
    doc = doc_with(lambda d: data(d, "a").update(password="${SIPFLOW_TEST_UNSET_PW}"))
    sipflow_pytester.makefile(".sipflow.json", env=json.dumps(doc))
    result = sipflow_pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["*env.sipflow.json: invalid sipflow scenario: node 'a', field "
                                 "'data.password': environment variable SIPFLOW_TEST_UNSET_PW "
                                 "is not set*"])


def test_markers_a_file_declares_are_registered(sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", tagged=basic_call(markers=["nightly", "pbx_a"]),
                              plain=basic_call())
    result = sipflow_pytester.runpytest("--collect-only", "-q", "--strict-markers",
                                        "-W", "error::pytest.PytestUnknownMarkWarning",
                                        "-m", "nightly and pbx_a")
    result.stdout.fnmatch_lines(["tagged.sipflow.json::tagged", "*1/2 tests collected*"])
    assert "PytestUnknownMarkWarning" not in result.stdout.str()
    assert result.ret == 0


def test_deeply_nested_data_is_refused_not_a_recursion_error() -> None:
    deep: Any = "x"
    for _ in range(900):
        deep = [deep]
    message = refusal(doc_with(lambda d: data(d, "call").update(headers={"X-A": deep})))
    assert "node 'call', field 'data.headers.X-A" in message and "nested more than" in message


def test_reference_page_names_every_node_key_and_editor_key() -> None:
    page = (REPO / "docs" / "reference.md").read_text()
    models = [schema.SipInstanceData, *schema.COMMANDS.values(), *schema.EVENTS.values()]
    names = [*schema.COMMANDS, *schema.EVENTS, *schema.EDITOR_KEYS,
             *(key for model in models for key in model.known_keys())]
    missing = sorted({name for name in names
                      if not re.search(rf"`{name}`|^###.*\b{name}\b", page, flags=re.M)})
    assert not missing, f"docs/reference.md does not mention {missing}"
