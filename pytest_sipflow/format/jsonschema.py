"""The JSON Schema of ``*.sipflow.json``, generated from the models of :mod:`.schema`.

Editors (VS Code, JetBrains) validate and complete node data with it. One source: every
key a model declares appears here; node ``data`` is as strict as the loader (editor keys
allowed), the rest as lenient. ``python -m pytest_sipflow.schema`` prints it.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from pydantic import BaseModel

from .schema import (COMMANDS, EDITOR_KEYS, EVENTS, NODE_TYPES, Document, RawNode,
                     SipInstanceData)

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SHIPPED = "sipflow.schema.json"  # in this package, beside this module


def _model(model: type[BaseModel], defs: dict[str, Any]) -> dict[str, Any]:
    """The model's schema with its own ``$defs`` hoisted into ``defs``."""
    out = model.model_json_schema(by_alias=True, mode="validation",
                                  ref_template="#/$defs/{model}")
    defs.update(out.pop("$defs", {}))
    return out


def _node_data(model: type[BaseModel], defs: dict[str, Any], key: str | None = None,
               names: list[str] | None = None) -> dict[str, Any]:
    """Strict ``data``: the model's keys, their other spellings, the editor's keys."""
    out = _model(model, defs)
    props = out.setdefault("properties", {})
    for name in getattr(model, "known_keys")():
        props.setdefault(name, {})  # a second spelling (AliasChoices), any value
    for name in sorted(EDITOR_KEYS):
        props.setdefault(name, {"description": "the SIPFLOW editor's own key; ignored"})
    if key and names:
        props[key] = {"enum": names, "title": key}
    out["additionalProperties"] = False
    out["properties"] = {name: sub if name == key else _allow_references(sub)
                         for name, sub in props.items()}
    return out


#: ``${NAME}`` (environment or ``parametrize``) is replaced before a value is checked.
REFERENCE = {"type": "string", "pattern": r"\$\{[^}]+\}"}


def _allow_references(schema: Any) -> Any:
    """Where node data constrains a string (pattern or enum), a ``${NAME}`` is fine too."""
    if isinstance(schema, list):
        return [_allow_references(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _allow_references(v) for k, v in schema.items()}
    if "pattern" in out or ("enum" in out and all(isinstance(v, str) for v in out["enum"])):
        return {"anyOf": [out, REFERENCE]}
    return out


def _dispatch(kind: str, table: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """``data`` of a command or event node: the name picks the model (aliases included)."""
    names: dict[type, list[str]] = {}
    for name, model in table.items():
        names.setdefault(model, []).append(name)
    branches = []
    for model, spelled in names.items():
        ident = f"{kind.capitalize()}{model.__name__}"
        defs[ident] = _node_data(model, defs, kind, spelled)
        branches.append({"if": {"properties": {kind: {"enum": spelled}}, "required": [kind]},
                         "then": {"$ref": f"#/$defs/{ident}"}})
    return {"type": "object", "required": [kind],
            "properties": {kind: {"enum": list(table)}}, "allOf": branches}


def generate() -> dict[str, Any]:
    """The whole schema as a JSON-safe dict (deterministic: same models, same dict)."""
    defs: dict[str, Any] = {}
    document = _model(Document, defs)
    defs["SipInstanceData"] = _node_data(SipInstanceData, defs)
    defs["CommandNodeData"] = _dispatch("command", COMMANDS, defs)
    defs["EventNodeData"] = _dispatch("event", EVENTS, defs)
    node = _model(RawNode, defs)
    node["properties"]["type"] = {"enum": list(NODE_TYPES), "title": "Type"}
    node["allOf"] = [
        {"if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
         "then": {"properties": {"data": {"$ref": f"#/$defs/{ref}"}}}}
        for kind, ref in (("sipInstance", "SipInstanceData"), ("command", "CommandNodeData"),
                          ("event", "EventNodeData"))]
    defs["RawNode"] = node
    document["properties"] = {"$schema": {"type": "string", "description":
                                          "where editors find this schema; ignored by the loader"},
                              **document["properties"]}
    wrapper = {"type": "object", "required": ["flowData"],
               "properties": {"name": {"type": "string"}, "description": {"type": "string"},
                              "flowData": {"type": "string",
                                           "description": "the flow as JSON text"}}}
    return {"$schema": DIALECT, "title": "SIPFLOW scenario (*.sipflow.json)",
            "description": "A call-flow scenario run by pytest-sipflow; see docs/reference.md.",
            "if": {"required": ["flowData"], "not": {"required": ["nodes"]}},
            "then": {"$ref": "#/$defs/EditorWrapper"}, "else": {"$ref": "#/$defs/Document"},
            "$defs": {**dict(sorted(defs.items())), "Document": document,
                      "EditorWrapper": wrapper}}


def dumps(schema: dict[str, Any] | None = None) -> str:
    """The schema as the shipped file writes it."""
    return json.dumps(schema if schema is not None else generate(), indent=1,
                      ensure_ascii=False) + "\n"


def shipped_path() -> Any:
    """The schema file installed with the package (for editor settings)."""
    return resources.files(__package__) / SHIPPED
