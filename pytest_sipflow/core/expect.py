"""What a step checks on what arrived: header checks, codecs, final responses, silence.

One failure text (expected/actual) for the scenario nodes and the Python API alike.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

from ..sip.checks import HeaderCheck, check_headers
from ..sip.message import SipMessage
from .failures import StepFailed
from .mailbox import Event, Mailbox
from .trace import failure_lines

def in_ms(seconds: float) -> str:
    return f"{seconds * 1000:g} ms"


#: Header checks: compiled (schema, ``sip.checks.compile_checks``) or a raw §4.9 spec.
Checks = Sequence[HeaderCheck] | Mapping[str, object]


def codec_matches(expected: str, actual: str | None) -> bool:
    """``PCMA`` equals ``pcma`` and ``PCMA/8000``: the name decides, a clock rate if given."""
    if not actual:
        return False
    want, _, rate = expected.strip().lower().partition("/")
    name, _, got_rate = actual.lower().partition("/")
    return want == name and (not rate or not got_rate or rate == got_rate)


def assert_headers(message: SipMessage | None, checks: Checks, what: str) -> None:
    """Fail with every failed check as expected/actual (the one failure text of the
    scenario nodes and the Python API)."""
    if not checks:
        return
    if message is None:
        raise StepFailed(f"no received {what} to check headers on",
                         expected=f"a received {what}", actual="no such SIP message")
    failures = check_headers(message, checks)
    if failures:
        expected, actual = failure_lines(failures)
        count = "a header check" if len(failures) == 1 else f"{len(failures)} header checks"
        raise StepFailed(f"{count} failed on {message.start_line}",
                         expected=expected, actual=actual)


def final_reply(what: str, reply: dict[str, Any], expected: int | None) -> dict[str, Any]:
    """A transaction's final response: 2xx, or exactly ``expected``."""
    code = int(reply.get("code") or 0)
    status = f"{code} {reply.get('reason') or ''}".strip()
    ok = code == expected if expected is not None else 200 <= code < 300
    if not ok:
        want = str(expected) if expected is not None else "2xx"
        raise StepFailed(f"{what} answered {status}, expected {want}",
                         expected=f"{want} to {what}", actual=status)
    return reply


def expect_nothing(box: Mailbox, match: Callable[[Event], bool], timeout: float,
                   what: str) -> None:
    """A negative check (``absent: true``): nothing ``match`` accepts may arrive within
    ``timeout`` — counting one that was already waiting when the check started."""
    start = time.monotonic()
    ev = box.take(match, timeout, consume=False)
    if ev is None:
        return
    ms = (ev.t - start) * 1000.0
    when = (f"{ms:.0f} ms after the node started" if ms >= 0
            else f"{-ms:.0f} ms before the node started")
    raise StepFailed(f"{what} happened but must not: {ev.describe()}, {when}",
                     expected=f"no {what} within {in_ms(timeout)}",
                     actual=f"{ev.describe()} at {when}")


def srtp_hint(code: int, srtp: str) -> str:
    """Why a 488 may have come: the SDP offer's RTP profile (SRTP or not) was refused."""
    if code != 488:
        return ""
    if srtp == "mandatory":
        return (" — SRTP: this instance offers only SRTP (RTP/SAVP, srtp mandatory) and the "
                "peer refused it; give both sides srtp 'mandatory' or 'optional'")
    return (" — the peer refused the SDP offer: no common codec, or it requires SRTP "
            f"(this instance's srtp is {srtp!r})")
