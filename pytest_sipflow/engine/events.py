"""Execution events, shaped like the SIPFLOW editor's: node-state, action-log, scenario-state.

Plain frozen records, so they can be handed to user hooks, stored on a result, and sent
across xdist as dicts (``as_dict``) without dragging engine objects along.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Union


@dataclass(frozen=True)
class NodeStateEvent:
    scenario: str
    node_id: str
    instance_id: str
    previous_state: str
    new_state: str
    timestamp: float

    kind = "node-state"

    def as_dict(self) -> dict[str, Any]:
        return _camel(self)


@dataclass(frozen=True)
class ActionLogEvent:
    scenario: str
    node_id: str | None
    instance_id: str
    message: str
    level: str  # "info" | "warning" | "error" | "sip"
    timestamp: float
    sip_message: str | None = None  # start line of a SIP message, when there is one
    direction: str | None = None  # "sent" | "received", for a SIP message
    sip_text: str | None = None  # the whole SIP message as the agent logged it

    kind = "action-log"

    def as_dict(self) -> dict[str, Any]:
        return _camel(self)


@dataclass(frozen=True)
class ScenarioStateEvent:
    scenario: str
    state: str  # "running" | "completed" | "failed" | "stopped"
    timestamp: float
    message: str = ""

    kind = "scenario-state"

    def as_dict(self) -> dict[str, Any]:
        return _camel(self)


ExecutionEvent = Union[NodeStateEvent, ActionLogEvent, ScenarioStateEvent]
Listener = Callable[[ExecutionEvent], None]


def _camel(event: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": event.kind}
    for key, value in asdict(event).items():
        head, *rest = key.split("_")
        out[head + "".join(p.title() for p in rest)] = value
    return out
