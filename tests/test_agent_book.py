"""The agent's bookkeeping with a fake clock (pytest_sipflow.agent.book): no pjsua2."""

from __future__ import annotations

import pytest

from pytest_sipflow.agent.book import (IOQUEUE_HANDLES, IOQUEUE_RESERVED, SOCKETS_PER_CALL,
                                       CallBook, DtmfJob, PendingOps, SocketBudget, next_wake)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_call_book_handles_are_never_reused() -> None:
    book: CallBook[object] = CallBook(FakeClock())
    h1, h2 = book.new_handle(), book.new_handle()
    assert (h1, h2) == ("c1", "c2")
    book.add(h1, "call")
    book.note_callid("cid-1", h1)
    assert book.handle_of("cid-1") == h1 and book.callid_of(h1) == "cid-1"
    assert book.end(h1) == "call" and h1 in book.ended and h1 not in book
    assert book.new_handle() == "c3"
    assert book.handle_of(None) is None
    for i in range(5):
        book.note_callid(f"old{i}", h1)
    book.prune_callids(keep_max=3)
    assert book.callids == {}


def test_pending_ops_by_kind_with_deadlines() -> None:
    clock = FakeClock()
    ops = PendingOps(clock)
    ops.add(1, "hold", "reinvite", "c1", 10, "final response to the re-INVITE")
    ops.add(2, "transfer", "refer", "c1", 5, "response to the REFER")
    ops.add(3, "register", "register", "account", 2, "final response to the REGISTER")
    with pytest.raises(ValueError, match="still waiting"):
        ops.add(4, "retrieve", "reinvite", "c1", 10, "x")
    assert ops.next_deadline() == 102.0
    clock.now = 103
    assert [p.req_id for p in ops.expired()] == [3]
    assert [p.req_id for p in ops.take("c1", "refer")] == [2]
    assert ops.find("c1", "reinvite") is not None
    assert [p.req_id for p in ops.take("c1")] == [1]
    assert len(ops) == 0 and ops.next_deadline() is None


def test_dtmf_job_paces_digits_and_waits_for_the_last_tone() -> None:
    clock = FakeClock()
    job = DtmfJob(1, "c1", "12", "rfc2833", 100, clock)
    assert job.duration == 66 and job.due() == "send" and job.next_digit == "1"
    assert job.sent() is False
    assert job.due() is None and job.wake_at() == pytest.approx(100.1)
    clock.now = 100.1
    assert job.due() == "send" and job.next_digit == "2"
    assert job.sent() is False  # rfc2833: waits for the queued tones
    assert job.reply_at is not None and job.due() is None
    clock.now = job.reply_at
    assert job.due() == "reply"
    info = DtmfJob(2, "c1", "9", "info", 0, clock)
    assert info.duration == 160 and info.sent() is True


def test_socket_budget_counts_recently_closed_calls() -> None:
    clock = FakeClock()
    budget = SocketBudget(clock)
    limit_calls = (IOQUEUE_HANDLES - IOQUEUE_RESERVED) // SOCKETS_PER_CALL
    assert budget.fits(limit_calls - 1) and not budget.fits(limit_calls)
    budget.released()
    assert budget.in_use(0) == SOCKETS_PER_CALL
    assert not budget.fits(limit_calls - 1)
    clock.now += 1
    assert budget.in_use(0) == 0 and budget.next_release() is None


def test_next_wake() -> None:
    assert next_wake(10.0) == 1.0
    assert next_wake(10.0, None, 10.25, 12.0) == pytest.approx(0.25)
    assert next_wake(10.0, 9.0) == 0.0
    assert next_wake(10.0, 50.0, idle_max=0.1) == 0.1
