"""What a run produced: node states and timings, the failure, events and SIP messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .events import ExecutionEvent

@dataclass
class NodeRun:
    id: str
    instance: str  # the instance the node acts on
    chain: str  # the instance whose thread runs it
    kind: str  # "command" | "event"
    name: str  # canonical command/event name
    call_id: str
    state: str = "pending"
    started: float | None = None  # seconds since the scenario started
    ended: float | None = None
    message: str = ""

    @property
    def duration(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started


@dataclass(frozen=True)
class Failure:
    """Why a scenario did not pass, as the report shows it."""

    reason: str
    node: str | None = None
    instance: str | None = None
    name: str | None = None  # command/event of the node
    expected: str | None = None
    actual: str | None = None
    detail: tuple[str, ...] = ()  # extra lines, e.g. an agent's last stderr lines


@dataclass
class ScenarioResult:
    name: str
    path: str
    state: str = "running"  # then "completed" | "failed" | "stopped"
    nodes: dict[str, NodeRun] = field(default_factory=dict)
    paths: dict[str, list[str]] = field(default_factory=dict)  # chain instance -> node ids
    failure: Failure | None = None
    events: list[ExecutionEvent] = field(default_factory=list)
    sip_messages: list[dict[str, Any]] = field(default_factory=list)
    duration: float = 0.0
    # For the reports (ladder columns and labels), filled by the runner:
    instances: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> {"uri", "address"}
    call_keys: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> {call handle: callId}
    #: instance -> {callId: the call's last media statistics (agent shape)}, when checked
    media: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: WAVs of what instances received (RecordAudio, in-band DTMF): instance, callId, path, node
    recordings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.state == "completed"

    def node_states(self) -> dict[str, str]:
        return {node_id: run.state for node_id, run in self.nodes.items()}
