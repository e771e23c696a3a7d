"""Engine settings: a plain record, importable without the engine (the option layer uses it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineSettings:
    event_timeout_ms: float = 10_000  # nodes without their own ``timeout``
    scenario_timeout_ms: float = 60_000  # files without their own ``timeout``
    request_timeout_s: float = 5.0  # an agent must answer a request within this
