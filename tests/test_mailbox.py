"""Unit tests of the per-instance event queue: no lost events, dialog keys, take-over."""

from __future__ import annotations

import threading
import time

import pytest

from pytest_sipflow.core.failures import AgentDied
from pytest_sipflow.core.mailbox import Interrupted, Mailbox


@pytest.fixture
def box() -> Mailbox:
    return Mailbox("b", threading.Event())


def test_event_that_arrived_before_the_wait_is_not_lost(box: Mailbox) -> None:
    box.post({"event": "incoming", "call": "c1", "from": "<sip:100@127.0.0.1>"})
    box.post({"event": "disconnected", "call": "c1", "code": 487})
    ev = box.take_incoming("primary", timeout=0)
    assert ev is not None and ev.call == "c1"
    gone = box.take(lambda e: e.key == "primary" and e.type == "disconnected", timeout=0)
    assert gone is not None and gone.raw["code"] == 487, "earlier event retro-tagged with the key"


def test_consumed_event_is_not_matched_twice(box: Mailbox) -> None:
    box.post({"event": "incoming", "call": "c1"})
    assert box.take_incoming("x", 0) is not None
    assert box.take_incoming("y", 0) is None


def test_events_of_other_keys_do_not_match(box: Mailbox) -> None:
    box.bind("c1", "primary")
    box.bind("c2", "consult")
    box.post({"event": "held", "call": "c2"})
    assert box.take(lambda e: e.key == "primary" and e.type == "held", 0) is None
    assert box.take(lambda e: e.key == "consult" and e.type == "held", 0) is not None


def test_transfer_moves_the_key_to_the_new_call(box: Mailbox) -> None:
    box.bind("c1", "primary")
    box.post({"event": "transferred", "call": "c1", "new_call": "c2"})
    box.post({"event": "disconnected", "call": "c1", "code": 200})
    assert box.handle("primary") == "c2"
    assert box.take(lambda e: e.key == "primary" and e.type == "transferred", 0) is not None
    assert box.take(lambda e: e.key == "primary" and e.type == "disconnected", 0) is None, \
        "the old call's end no longer belongs to the key"


def test_wait_wakes_when_the_event_arrives(box: Mailbox) -> None:
    box.bind("c1", "k")
    timer = threading.Timer(0.05, box.post, args=({"event": "ringing", "call": "c1"},))
    timer.start()
    start = time.monotonic()
    ev = box.take(lambda e: e.type == "ringing", timeout=5)
    timer.join()
    assert ev is not None and time.monotonic() - start < 2


def test_abort_interrupts_a_wait() -> None:
    abort = threading.Event()
    box = Mailbox("b", abort)
    threading.Timer(0.05, lambda: (abort.set(), box.wake())).start()
    with pytest.raises(Interrupted):
        box.take(lambda e: False, timeout=5)


def test_agent_death_ends_every_wait(box: Mailbox) -> None:
    box.post({"event": "agent_died", "returncode": -9, "stderr": ["boom"]})
    with pytest.raises(AgentDied) as info:
        box.take(lambda e: False, timeout=5)
    assert info.value.returncode == -9 and info.value.stderr == ["boom"]
