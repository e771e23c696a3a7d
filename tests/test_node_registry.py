"""Every command and event of the format has exactly one engine handler, keyed by its model."""

from __future__ import annotations

import pytest

from pytest_sipflow.engine import nodes
from pytest_sipflow.format import schema


def test_every_handler_is_for_a_model_of_the_format() -> None:
    assert nodes.unhandled() == [] and set(nodes.HANDLERS) == set(schema.STEP_MODELS)


def test_a_model_without_a_handler_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(nodes.HANDLERS, schema.Held)
    assert nodes.unhandled() == ["HELD"]


def test_each_waiting_event_names_the_agent_event_that_completes_it() -> None:
    timed = (schema.Timeout, schema.Media)  # a plain delay; a sample of RTP after a delay
    waiting = [m for m in schema.EVENTS.values() if m not in timed]
    assert all(m.agent_event for m in waiting) and all(m.agent_event is None for m in timed)
