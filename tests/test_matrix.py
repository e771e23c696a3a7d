"""A file's ``parametrize``: refusals, ids, substitution, and the 6-item real-mode matrix
through the suite's Kamailio (its own log proves every transport)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, chain, command, event, instance, scenario
from pytest_sipflow.errors import ScenarioFormatError
from pytest_sipflow.format import graph as graph_mod
from pytest_sipflow.format import matrix
from pytest_sipflow.testing import KamailioServer, available

MATRIX = REPO / "scenarios" / "real-mode" / "matrix-basic.sipflow.json"
IDS = ["udp-PCMU", "udp-PCMA", "tcp-PCMU", "tcp-PCMA", "tls-PCMU", "tls-PCMA"]


def local_call(**top: Any) -> dict[str, Any]:
    """A local-mode call whose caller offers only ``${codec}`` and checks it was chosen."""
    doc = json.loads(scenario([
        instance("a", "100", codecs=["${codec}"]), instance("b", "200"),
        command("dial", "MakeCall", "a", targetUri="200"),
        event("up", "CONNECTED", "a", expectedCodec="${codec}"),
        command("bye", "Release", "a"),
        event("ring", "INCOMING", "b"), command("answer", "Answer", "b"),
        event("gone", "DISCONNECTED", "b")],
        chain("a", "dial", "up", "bye") + chain("b", "ring", "answer", "gone")))
    doc.update({"name": "call", "parametrize": {"codec": ["PCMU", "PCMA"]}, **top})
    return doc


def refusals(raw: Any) -> list[str]:
    return [p.render() for p in matrix.check(raw)[1]]


# -- pure ---------------------------------------------------------------------------------


def test_ids_follow_the_files_order_first_parameter_slowest() -> None:
    combos = matrix.combinations({"transport": ["udp", "tcp", "tls"], "codec": ["PCMU", "PCMA"]})
    assert [i for i, _ in combos] == IDS
    assert combos[-1][1] == {"transport": "tls", "codec": "PCMA"}
    assert matrix.combinations({}) == [("", {})]


@pytest.mark.parametrize("raw, expected", [
    ({"codec": []}, "field 'parametrize.codec': the list of values is empty"),
    ({"codec": "PCMU"}, "field 'parametrize.codec': a parameter's values are a list"),
    ({"1codec": ["x"]}, "field 'parametrize.1codec': parameter name '1codec' is not an identifier"),
    ({"SIPFLOW_WORKER": ["1"]}, "field 'parametrize.SIPFLOW_WORKER': SIPFLOW_WORKER is set by"),
    ({"codec": ["PCMU", "PCMU"]}, "field 'parametrize.codec': value(s) 'PCMU' listed twice"),
    ({"codec": [{"a": 1}]}, "field 'parametrize.codec': values are strings or numbers"),
    (["codec"], "field 'parametrize': parametrize is an object of parameter lists"),
    ({}, "field 'parametrize': parametrize is an object of parameter lists"),
])
def test_bad_parametrize_values_are_refused(raw: Any, expected: str) -> None:
    (problem,) = refusals(raw)
    assert problem.startswith(expected)


def test_parameters_are_substituted_before_the_environment() -> None:
    data = {"port": "${PORT_${t}}", "list": ["${t}", "${t:-x}", "${OTHER}"], "n": 3}
    assert matrix.substitute(data, {"t": "tls"}) == {
        "port": "${PORT_tls}", "list": ["tls", "tls", "${OTHER}"], "n": 3}


# -- graphs -------------------------------------------------------------------------------


def test_a_parameter_shadows_a_variable_and_may_name_one(tmp_path: Path) -> None:
    doc = local_call()
    doc["nodes"][0]["data"]["label"] = "${codec} on ${PORT_${codec}}"
    path = tmp_path / "call.sipflow.json"
    path.write_text(json.dumps(doc))
    env = {"codec": "G722", "PORT_PCMU": "5060", "PORT_PCMA": "5070", "SIPFLOW_WORKER": "3"}
    graphs = graph_mod.load_all(path, graph_mod.LoadOptions(env=env, worker=0))
    assert [g.param_id for g in graphs] == ["PCMU", "PCMA"]
    assert [g.instances["a"].data.label for g in graphs] == ["PCMU on 5060", "PCMA on 5070"]
    assert graphs[1].instances["a"].data.codecs == ["PCMA"]


def test_each_combination_is_validated_and_named(tmp_path: Path) -> None:
    doc = local_call(parametrize={"codec": ["PCMU"], "transport": ["udp", "sctp"]})
    doc["nodes"][0]["data"].update(pbxHost="127.0.0.1", pbxTransport="${transport}")
    doc["nodes"][1]["data"]["label"] = "${codek}"
    path = tmp_path / "call.sipflow.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ScenarioFormatError) as info:
        graph_mod.load_all(path, graph_mod.LoadOptions(env={}))
    text = str(info.value)
    assert "node 'a', field 'data.pbxTransport': unknown transport" in text
    assert "(with [PCMU-sctp])" in text
    assert ("node 'b', field 'data.label': codek is neither a parameter (codec, transport) "
            "nor a set environment variable; did you mean 'codec'?") in text


def test_an_unused_parameter_is_refused(tmp_path: Path) -> None:
    doc = local_call(parametrize={"codec": ["PCMU"], "transport": ["udp"]})
    with pytest.raises(ScenarioFormatError, match=r"field 'parametrize.transport': parameter "
                       r"'transport' is used in no node's data"):
        graph_mod.from_value(doc, "call.sipflow.json")


# -- pytest runs ---------------------------------------------------------------------------


def test_local_items_per_combination_selected_by_k_and_named_in_junit(
        sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", call=json.dumps(local_call()))
    result = sipflow_pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["call.sipflow.json::call[[]PCMU[]]",
                                 "call.sipflow.json::call[[]PCMA[]]"])
    result = sipflow_pytester.runpytest("-k", "PCMA", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, deselected=1)
    names = [c.get("name") for c in ET.parse(sipflow_pytester.path / "junit.xml").iter("testcase")]
    assert names == ["call[PCMA]"]


def test_the_expected_codec_fails_an_item_whose_codec_was_not_chosen(
        sipflow_pytester: pytest.Pytester) -> None:
    doc = local_call()
    doc["nodes"][0]["data"]["codecs"] = ["PCMU", "PCMA"]  # PCMU wins: the PCMA item must fail
    sipflow_pytester.makefile(".sipflow.json", call=json.dumps(doc))
    result = sipflow_pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["FAILED call.sipflow.json::call[[]PCMA[]]*"])


@pytest.mark.skipif(available() is not None, reason=str(available()))
def test_the_real_mode_matrix_runs_six_items_over_every_transport(
        kamailio: KamailioServer, sipflow_pytester: pytest.Pytester) -> None:
    assert kamailio.tls is not None
    sipflow_pytester.makefile(".sipflow.json", **{"matrix-basic": MATRIX.read_text()})
    seen = len(kamailio.requests())
    result = sipflow_pytester.runpytest("-v", "--junitxml=junit.xml",
                                        f"--sipflow-tls-ca={kamailio.tls.ca}")
    result.assert_outcomes(passed=6)
    cases = list(ET.parse(sipflow_pytester.path / "junit.xml").iter("testcase"))
    assert [c.get("name") for c in cases] == [f"matrix[{i}]" for i in IDS]
    assert all(not list(c) for c in cases), "a testcase has a failure or skip child"
    run = kamailio.requests()[seen:]
    invites = [r.proto for r in run if r.method == "INVITE"]
    assert list(dict.fromkeys(invites)) == ["udp", "tcp", "tls"], invites  # in item order
    registers = {r.proto for r in run if r.method == "REGISTER"}
    assert registers == {"udp", "tcp", "tls"}


def test_python_params_give_each_declared_parameter_its_value() -> None:
    from pytest_sipflow.api.scenario import Scenario

    with pytest.raises(ScenarioFormatError, match=r"field 'parametrize.codec': parameter "
                       r"'codec' has no value; pass one of PCMU, PCMA \(params= in Python\)"):
        Scenario.load(local_call(), agents=None)  # type: ignore[arg-type]
    loaded = Scenario.load(local_call(), agents=None,  # type: ignore[arg-type]
                           params={"codec": "PCMA"})
    assert loaded.graph.params == {"codec": "PCMA"}
    assert loaded.graph.instances["a"].data.codecs == ["PCMA"]


def test_the_editors_wrapper_may_carry_the_parameters(tmp_path: Path) -> None:
    doc = local_call()
    wrapper = {"name": "call", "parametrize": doc.pop("parametrize"), "flowData": json.dumps(doc)}
    path = tmp_path / "call.sipflow.json"
    path.write_text(json.dumps(wrapper))
    assert [g.param_id for g in graph_mod.load_all(path)] == ["PCMU", "PCMA"]
