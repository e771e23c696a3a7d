"""Reading a scenario: file bytes and JSON text to the models of :mod:`.schema`.

Every failure (encoding, JSON syntax, a wrong key or value) becomes a :class:`Problem`
naming node and field, so a user sees all problems of a file at once.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import Problem, ScenarioFormatError
from .fields import KeyProblem, _Model
from .schema import (COMMANDS, EDITOR_KEYS, EVENTS, NODE_TYPES, Document, NodeData, RawNode,
                     SipInstanceData)
from .values import is_secret


def _field_of(loc: tuple[int | str, ...]) -> str | None:
    names = [str(p) for p in loc if isinstance(p, str)]
    return ".".join(names) if names else None


def _problems(exc: ValidationError, node: str | None = None, prefix: str = "") -> list[Problem]:
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        where_node = node
        field = _field_of(loc)
        if node is None and loc[:1] in (("nodes",), ("edges",)) and len(loc) > 1:
            field = _field_of(loc[2:]) or None
            where_node = f"{loc[0]}[{loc[1]}]"
        error = err.get("ctx", {}).get("error")
        if isinstance(error, KeyProblem):
            field = error.key  # a refused combination: the key to change, as written
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif ("input" in err and not isinstance(err["input"], (dict, list))
              and not is_secret(field or "")):
            msg = f"{msg} (got {err['input']!r})"
        out.append(Problem(msg, where_node, (prefix + field) if field else field))
    return out


def _loads(text: str, path: str, what: str, field: str | None = None) -> Any:
    """JSON text -> value; every failure (syntax, depth, huge numbers) as a format error."""
    if text.startswith("\ufeff"):  # a UTF-8 byte-order mark, as some editors write
        text = text[1:]
    if not text.strip():
        raise ScenarioFormatError(path, [Problem(f"{what} is empty", field=field)])
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        problem = f"bad JSON{' inside flowData' if field else ''}: {exc.msg} at line " \
                  f"{exc.lineno}, column {exc.colno}"
    except RecursionError:
        problem = "bad JSON: nested too deeply"
    except ValueError:  # an integer with more digits than Python converts (4300)
        problem = "bad JSON: a number has too many digits"
    raise ScenarioFormatError(path, [Problem(problem, field=field)])


def decode(raw: bytes, path: str) -> str:
    """File bytes -> text: UTF-8, with or without a byte-order mark."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ScenarioFormatError(path, [Problem(
            f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})")]
        ) from None


def parse_text(text: str, path: str) -> Any:
    """JSON text -> Python value, unwrapping the editor's ``flowData`` wrapper."""
    return unwrap(_loads(text, path, "the file"), path)


def unwrap(value: Any, path: str) -> Any:
    """The flow data inside the editor's ``{"name", "flowData": "<json>"}`` save file."""
    if not (isinstance(value, dict) and isinstance(value.get("flowData"), str)
            and "nodes" not in value):
        return value
    inner = _loads(value["flowData"], path, "flowData", field="flowData")
    if isinstance(inner, dict):
        for key in ("name", "description", "markers", "timeout", "parametrize", "slo"):
            if key in value and key not in inner:
                inner[key] = value[key]
    return inner


def parse_document(value: Any, path: str) -> Document:
    if not isinstance(value, dict):
        raise ScenarioFormatError(
            path, [Problem("a scenario is a JSON object with \"nodes\" and \"edges\"")]
        )
    try:
        return Document.model_validate(value)
    except ValidationError as exc:
        raise ScenarioFormatError(path, _problems(exc)) from None


def node_model(node: RawNode, data: dict[str, Any] | None = None,
               ) -> tuple[type[_Model] | None, list[Problem]]:
    """The model a node's data follows, from its ``type`` and ``command``/``event`` key."""
    data = node.data if data is None else data
    if node.type == "sipInstance":
        return SipInstanceData, []
    if node.type not in ("command", "event"):
        return None, [Problem(
            f"unknown node type {node.type!r}; allowed: {', '.join(NODE_TYPES)}", node.id, "type")]
    key = node.type
    table: dict[str, Any] = COMMANDS if key == "command" else EVENTS
    if key not in data:
        return None, [Problem(f"the {key} key is missing from data; one of: {', '.join(table)}",
                              node.id, key)]
    name = data[key]
    if not isinstance(name, str) or name not in table:
        close = did_you_mean(name, table) if isinstance(name, str) else ""
        return None, [Problem(f"unknown {key} {name!r}{close}; allowed: {', '.join(table)}",
                              node.id, key)]
    return table[name], []


def did_you_mean(word: str, choices: Any) -> str:
    """'; did you mean X?' for the nearest choice (case-insensitive first), or ''."""
    choices = list(choices)
    same_case = [c for c in choices if c.lower() == word.lower()]
    match = same_case or difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {match[0]!r}?" if match else ""


def unknown_keys(model: type[_Model], data: dict[str, Any], node: str) -> list[Problem]:
    """A problem for every ``data`` key that is neither the format's nor the editor's."""
    known = model.known_keys()
    return [Problem(f"unknown key {key!r}{did_you_mean(key, known) or '; known keys: ' + ', '.join(known)}",
                    node, f"data.{key}")
            for key in data if key not in known and key not in EDITOR_KEYS]


def parse_node_data(node: RawNode, data: dict[str, Any] | None = None,
                    ) -> tuple[NodeData | None, list[Problem]]:
    """Typed data for one node, or the problems that prevent it.

    ``data`` replaces ``node.data`` when given (the environment-expanded copy).
    """
    data = node.data if data is None else data
    model, problems = node_model(node, data)
    if model is None:
        return None, problems
    problems = unknown_keys(model, data, node.id)
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        return None, problems + _problems(exc, node=node.id, prefix="data.")
    return (None if problems else parsed), problems  # type: ignore[return-value]


def read_document(path: Path) -> Document:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScenarioFormatError(str(path), [Problem(
            f"cannot read the file: {exc.strerror or exc}")]) from None
    return parse_document(parse_text(decode(raw, str(path)), str(path)), str(path))
