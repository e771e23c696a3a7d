"""pydantic models of the ``*.sipflow.json`` format (spec: scenario-format.md).

The models accept everything the SIPFLOW editor writes (unknown keys are ignored) and
normalise aliases (``AttendedTransfer`` -> ``MuteTransfer``, ``HoldEvent`` -> ``HELD``)
so the rest of the package only ever sees canonical names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from .errors import Problem, ScenarioFormatError

DTMF_DIGITS = "0123456789*#ABCD"

Millis = Annotated[float, Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="ignore", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


# --- sipInstance ---------------------------------------------------------------------


class SipInstanceData(_Model):
    dn: str = ""
    label: str = ""
    register_: bool = Field(True, alias="register")
    pbx_host: str = ""
    pbx_port: str | int = ""
    pbx_transport: Literal["UDP", "TCP", "TLS"] = "UDP"
    register_interval_seconds: int = Field(300, ge=0)
    codecs: list[str] = Field(default_factory=lambda: ["PCMU", "PCMA"])
    username: str | None = None
    password: str | None = None
    auth_user: str | None = None
    realm: str | None = None
    auto_ringing: bool = True

    @field_validator("dn", "pbx_port", mode="before")
    @classmethod
    def _numbers_as_text(cls, value: Any) -> Any:
        # The editor sometimes writes numbers where the format says strings.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("pbx_transport", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


# --- command / event -------------------------------------------------------------------


class _Step(_Model):
    """Keys common to commands and events."""

    sip_instance_id: str | None = None
    call_id: str = "call-1"
    timeout: Millis | None = None  # None: the run's default event timeout

    @field_validator("sip_instance_id", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("call_id", mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        return "call-1" if value in ("", None) else value


class CommandData(_Step):
    command: str
    canonical: ClassVar[str] = ""


class MakeCall(CommandData):
    canonical: ClassVar[str] = "MakeCall"
    target_uri: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)


class Answer(CommandData):
    canonical: ClassVar[str] = "Answer"
    status_code: int = Field(200, ge=200, le=299)


class Response(CommandData):
    canonical: ClassVar[str] = "Response"
    status_code: int = Field(ge=100, le=699)
    reason: str | None = None


class Release(CommandData):
    canonical: ClassVar[str] = "Release"
    status_code: int | None = Field(None, ge=300, le=699)


class Hold(CommandData):
    canonical: ClassVar[str] = "Hold"


class Retrieve(CommandData):
    canonical: ClassVar[str] = "Retrieve"


class BlindTransfer(CommandData):
    canonical: ClassVar[str] = "BlindTransfer"
    target_uri: str | None = None
    target_user: str | None = None
    target_host: str | None = None

    @model_validator(mode="after")
    def _has_target(self) -> "BlindTransfer":
        if not self.target_uri and not self.target_user:
            raise ValueError("needs targetUri, or targetUser (+ targetHost)")
        return self


class MuteTransfer(CommandData):
    canonical: ClassVar[str] = "MuteTransfer"
    primary_call_id: str = Field(min_length=1)
    consult_call_id: str = Field(min_length=1)


class SendDTMF(CommandData):
    canonical: ClassVar[str] = "SendDTMF"
    digits: str = Field(min_length=1)
    interval_ms: Millis = 100
    method: Literal["rfc2833", "info"] = "rfc2833"

    @field_validator("digits", mode="before")
    @classmethod
    def _digits(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str):
            value = value.upper()
            bad = sorted({c for c in value if c not in DTMF_DIGITS})
            if bad:
                raise ValueError(f"invalid DTMF digit(s) {''.join(bad)!r}; allowed: 0-9 * # A-D")
        return value

    @field_validator("method", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


class PlayAudio(CommandData):
    canonical: ClassVar[str] = "PlayAudio"
    file_path: str = Field(min_length=1)


class EventData(_Step):
    event: str
    canonical: ClassVar[str] = ""


class Incoming(EventData):
    canonical: ClassVar[str] = "INCOMING"
    number: str | None = None

    @field_validator("number", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if value == "":
            return None
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Ringing(EventData):
    canonical: ClassVar[str] = "RINGING"


class Disconnected(EventData):
    canonical: ClassVar[str] = "DISCONNECTED"


class Timeout(EventData):
    canonical: ClassVar[str] = "TIMEOUT"


class DTMFReceived(EventData):
    canonical: ClassVar[str] = "DTMFReceived"
    expected_digit: str | None = None
    expected_digits: str | None = None

    @field_validator("expected_digit", "expected_digits", mode="before")
    @classmethod
    def _digits(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if value == "":
            return None
        if isinstance(value, str):
            value = value.upper()
            bad = sorted({c for c in value if c not in DTMF_DIGITS})
            if bad:
                raise ValueError(f"invalid DTMF digit(s) {''.join(bad)!r}; allowed: 0-9 * # A-D")
        return value

    @field_validator("expected_digit")
    @classmethod
    def _one(cls, value: str | None) -> str | None:
        if value is not None and len(value) != 1:
            raise ValueError("expectedDigit is one digit; use expectedDigits for a sequence")
        return value

    @property
    def expected(self) -> str | None:
        return self.expected_digits or self.expected_digit


class Held(EventData):
    canonical: ClassVar[str] = "HELD"


class Retrieved(EventData):
    canonical: ClassVar[str] = "RETRIEVED"


class Transferred(EventData):
    canonical: ClassVar[str] = "TRANSFERRED"


class Notify(EventData):
    canonical: ClassVar[str] = "NOTIFY"
    status_code: int | None = Field(None, ge=100, le=699)


COMMANDS: dict[str, type[CommandData]] = {
    m.canonical: m
    for m in (MakeCall, Answer, Response, Release, Hold, Retrieve, BlindTransfer,
              MuteTransfer, SendDTMF, PlayAudio)
}
COMMANDS["AttendedTransfer"] = MuteTransfer

EVENTS: dict[str, type[EventData]] = {
    m.canonical: m
    for m in (Incoming, Ringing, Disconnected, Timeout, DTMFReceived, Held, Retrieved,
              Transferred, Notify)
}
EVENTS.update(HoldEvent=Held, RetrieveEvent=Retrieved, TransferEvent=Transferred)

NODE_TYPES = ("sipInstance", "command", "event")


# --- document --------------------------------------------------------------------------


class RawNode(_Model):
    id: str = Field(min_length=1)
    type: str
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class EdgeData(_Model):
    branch_type: str | None = None


class RawEdge(_Model):
    id: str | None = None
    source: str
    target: str
    source_handle: str | None = None
    data: EdgeData | None = None

    @property
    def is_failure(self) -> bool:
        return self.source_handle == "failure" or (
            self.data is not None and self.data.branch_type == "failure"
        )


class Document(_Model):
    name: str | None = None
    description: str | None = None
    markers: list[str] = Field(default_factory=list)
    timeout: Millis | None = None
    nodes: list[RawNode]
    edges: list[RawEdge] = Field(default_factory=list)


# --- loading ---------------------------------------------------------------------------

NodeData = SipInstanceData | CommandData | EventData


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
        if err["type"] == "missing":
            msg = "required field is missing"
        elif "input" in err and not isinstance(err["input"], (dict, list)):
            msg = f"{msg} (got {err['input']!r})"
        out.append(Problem(msg, where_node, (prefix + field) if field else field))
    return out


def parse_text(text: str, path: str) -> Any:
    """JSON text -> Python value, unwrapping the editor's ``flowData`` wrapper."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScenarioFormatError(
            path, [Problem(f"bad JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")]
        ) from None
    return unwrap(value, path)


def unwrap(value: Any, path: str) -> Any:
    """The flow data inside the editor's ``{"name", "flowData": "<json>"}`` save file."""
    if not (isinstance(value, dict) and isinstance(value.get("flowData"), str)
            and "nodes" not in value):
        return value
    try:
        inner = json.loads(value["flowData"])
    except json.JSONDecodeError as exc:
        raise ScenarioFormatError(
            path,
            [Problem(f"bad JSON inside flowData: {exc.msg} at line {exc.lineno}, "
                     f"column {exc.colno}", field="flowData")],
        ) from None
    if isinstance(inner, dict):
        for key in ("name", "description", "markers", "timeout"):
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


def parse_node_data(node: RawNode) -> tuple[NodeData | None, list[Problem]]:
    """Typed data for one node, or the problems that prevent it."""
    if node.type == "sipInstance":
        model: type[_Model] = SipInstanceData
    elif node.type == "command":
        name = node.data.get("command")
        if not isinstance(name, str) or name not in COMMANDS:
            return None, [Problem(
                f"unknown command {name!r}; allowed: {', '.join(COMMANDS)}", node.id, "command")]
        model = COMMANDS[name]
    elif node.type == "event":
        name = node.data.get("event")
        if not isinstance(name, str) or name not in EVENTS:
            return None, [Problem(
                f"unknown event {name!r}; allowed: {', '.join(EVENTS)}", node.id, "event")]
        model = EVENTS[name]
    else:
        return None, [Problem(
            f"unknown node type {node.type!r}; allowed: {', '.join(NODE_TYPES)}", node.id, "type")]
    try:
        return model.model_validate(node.data), []  # type: ignore[return-value]
    except ValidationError as exc:
        return None, _problems(exc, node=node.id, prefix="data.")


def read_document(path: Path) -> Document:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioFormatError(str(path), [Problem(f"cannot read the file: {exc}")]) from None
    return parse_document(parse_text(text, str(path)), str(path))
