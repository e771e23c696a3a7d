"""The scenario JSON Schema: generated from the models, shipped, and as strict as the loader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import REPO, command, instance, scenario
from pytest_sipflow.errors import ScenarioFormatError
from pytest_sipflow.format import graph
from pytest_sipflow.format.jsonschema import dumps, generate, shipped_path

BUNDLED = sorted((REPO / "scenarios").rglob("*.sipflow.json"))
VALIDATOR = jsonschema.Draft202012Validator(generate())


def errors(value: Any) -> list[str]:
    return [e.message for e in VALIDATOR.iter_errors(value)]


def test_the_shipped_file_is_the_generated_schema() -> None:
    shipped = Path(str(shipped_path())).read_text(encoding="utf-8")
    assert shipped == dumps(), ("pytest_sipflow/format/sipflow.schema.json is stale: run "
                                "python -m pytest_sipflow.schema -o pytest_sipflow/format/sipflow.schema.json")
    jsonschema.Draft202012Validator.check_schema(json.loads(shipped))


def test_the_module_prints_the_schema() -> None:
    out = subprocess.run([sys.executable, "-m", "pytest_sipflow.schema"], capture_output=True,
                         text=True, check=True).stdout
    assert json.loads(out) == generate()


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: str(p.relative_to(REPO)))
def test_every_bundled_scenario_validates(path: Path) -> None:
    value = json.loads(path.read_text(encoding="utf-8"))
    assert errors(value) == []
    if "flowData" in value:  # the editor's wrapper: its flow too
        assert errors(json.loads(value["flowData"])) == []


def flow(**data: Any) -> dict[str, Any]:
    nodes = [instance("a", "100", **data.pop("instance", {})),
             command("call", data.pop("command", "MakeCall"), "a", targetUri="200", **data)]
    return json.loads(scenario(nodes, [{"id": "e", "source": "a", "target": "call"}]))


REFUSED = {
    "unknown key in node data": (flow(targetUrl="x"), "targetUrl"),
    "bad pbxTransport": (flow(instance={"pbxTransport": "SCTP"}), "pbxTransport"),
    "unknown command": (flow(command="MakeCal"), "command"),
}


@pytest.mark.parametrize("name", REFUSED)
def test_a_file_the_plugin_refuses_the_schema_refuses(name: str) -> None:
    value, field = REFUSED[name]
    with pytest.raises(ScenarioFormatError, match=field):
        graph.from_value(value, "refused.sipflow.json")
    assert errors(value), f"the schema accepts a file with {name}"


def test_editor_keys_and_the_schema_key_are_accepted_by_both() -> None:
    value = flow(label="Dial Bob", color="#fff", instance={"pbxTransport": "tls"})
    value["$schema"] = "./sipflow.schema.json"
    value["viewport"] = {"x": 0, "y": 0, "zoom": 1}
    value["nodes"][1]["position"] = {"x": 10, "y": 20}
    graph.from_value(value, "ok.sipflow.json")
    assert errors(value) == []
    dtmf = flow(command="SendDTMF", digits=123, method="INFO")
    del dtmf["nodes"][1]["data"]["targetUri"]
    graph.from_value(dtmf, "dtmf.sipflow.json")
    assert errors(dtmf) == []


def test_an_alias_validates_as_its_canonical_model() -> None:
    value = flow(command="AttendedTransfer", primaryCallId="p", consultCallId="c")
    del value["nodes"][1]["data"]["targetUri"]
    graph.from_value(value, "alias.sipflow.json")
    assert errors(value) == []
    del value["nodes"][1]["data"]["consultCallId"]
    assert errors(value)


def test_a_bad_slo_is_refused_by_both() -> None:
    value = flow()
    value["slo"] = {"asr": 0.99, "p95SetupMs": 300}
    assert graph.from_value(value, "slo.sipflow.json").slo is not None
    assert errors(value) == []
    value["slo"] = {"p95SetupMS": 300}
    with pytest.raises(ScenarioFormatError, match="did you mean 'p95SetupMs'"):
        graph.from_value(value, "slo.sipflow.json")
    assert errors(value)
