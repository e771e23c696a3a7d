"""Hook specifications of pytest-sipflow: watch a scenario run from a conftest.py.

The hooks are called on the thread that runs the item (pytest's main thread for a
collected file), in the order the events happened. The engine queues events and delivers
them between its waits: never on an agent's reader thread, never under an engine lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..engine.events import ActionLogEvent, NodeStateEvent, ScenarioStateEvent


def pytest_sipflow_node_state(item: pytest.Item, event: "NodeStateEvent") -> None:
    """A node changed state (pending, running, completed, failed, cancelled, skipped)."""


def pytest_sipflow_action_log(item: pytest.Item, event: "ActionLogEvent") -> None:
    """A log line of the run: what a node did, warnings, and every SIP message (level "sip")."""


def pytest_sipflow_scenario_state(item: pytest.Item, event: "ScenarioStateEvent") -> None:
    """The scenario started ("running") or ended ("completed", "failed", "stopped")."""
