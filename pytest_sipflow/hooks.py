"""Hook specifications of pytest-sipflow: watch a scenario run from a conftest.py.

The hooks are called from the engine's instance threads, in the order the events
happened (one lock serialises them); keep implementations short and thread-safe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .engine.events import ActionLogEvent, NodeStateEvent, ScenarioStateEvent


def pytest_sipflow_node_state(item: pytest.Item, event: "NodeStateEvent") -> None:
    """A node changed state (pending, running, completed, failed, cancelled, skipped)."""


def pytest_sipflow_action_log(item: pytest.Item, event: "ActionLogEvent") -> None:
    """A log line of the run: what a node did, warnings, and every SIP message (level "sip")."""


def pytest_sipflow_scenario_state(item: pytest.Item, event: "ScenarioStateEvent") -> None:
    """The scenario started ("running") or ended ("completed", "failed", "stopped")."""
