"""What a side heard: recordings of a call's received audio, checks on them, in-band DTMF.

A :class:`Phone` keeps its recordings (``phone.recordings``) for the reports. In-band DTMF
is heard by analysing the receiving side's recording while it grows: a running
``RecordAudio`` of that call, else a capture of the node's own.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..format.hearing import SILENCE_DBFS, ExpectSilence, ExpectTone
from ..media.audio import AudioError
from ..media.heard import heard_digits, read_growing_wav, silence_verdict, tone_verdict
from .expect import in_ms
from .failures import StepFailed
from .mailbox import Interrupted
from .phone import Phone

POLL_S = 0.2  # how often a growing recording is searched for in-band digits


@dataclass
class Recording:
    """One WAV of what ``instance`` received on ``call_id``."""

    rec_id: int
    instance: str
    call_id: str
    path: str
    node: str | None
    handle: str = ""  # the call's agent handle
    running: bool = True  # the agent still writes the file
    open: bool = True  # no RecordAudio stop (or in-band wait of its own) ended it yet
    digits_taken: int = 0  # in-band digits already consumed by DTMFReceived nodes

    def as_dict(self) -> dict[str, Any]:
        return {"instance": self.instance, "callId": self.call_id, "path": self.path,
                "node": self.node}


def recordings(phone: Phone) -> list[Recording]:
    return phone.recordings  # type: ignore[no-any-return]


def default_path(folder: Path | None, phone: Phone, key: str, node: str) -> Path:
    """``<folder>/<instance>-<callId>-<node>.wav``; a fresh temp folder when none is set."""
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="sipflow-audio-"))
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{phone.name}-{key}-{node}").strip("_")
    return folder / f"{name[:150]}.wav"


def start(phone: Phone, key: str, path: Path, node: str | None) -> Recording:
    busy = running(phone, key)
    if busy is not None:
        raise StepFailed(f"callId {key!r} on instance {phone.name!r} is already being "
                         "recorded; stop that recording first",
                         expected="no running recording", actual=busy.path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StepFailed(f"cannot record to {path}: {exc.strerror or exc}") from None
    handle = phone.handle(key)
    reply = phone.request("record_start", call=handle, path=str(path))
    rec = Recording(int(reply["record"]), phone.name, key, str(path), node, handle)
    recordings(phone).append(rec)
    return rec


def running(phone: Phone, key: str) -> Recording | None:
    """The open recording of the call now under ``key`` (ended or not); a call that
    re-used the key later starts afresh."""
    handle = phone.box.handle(key)
    return next((r for r in reversed(recordings(phone))
                 if r.call_id == key and r.handle == handle and r.open), None)


def stop(phone: Phone, key: str) -> Recording:
    rec = running(phone, key)
    if rec is None:
        raise StepFailed(f"no recording is running on callId {key!r} of instance "
                         f"{phone.name!r}", expected="a RecordAudio start before",
                         actual="nothing recorded")
    finish(phone, rec)
    rec.open = False
    return rec


def finish(phone: Phone, rec: Recording) -> None:
    """Have the agent close the file (its last buffered audio is written then)."""
    if rec.running:
        phone.request("record_stop", record=rec.rec_id)
        rec.running = False


def check(rec: Recording, tone: ExpectTone | None,
          silence: bool | ExpectSilence | None) -> str:
    """Fail with what was heard unless the finished recording passes the checks."""
    if tone is None and silence is None:
        return ""
    try:
        audio = read_growing_wav(rec.path)
    except AudioError as exc:
        raise StepFailed(f"cannot analyse the recording: {exc}") from None
    problems = []
    if tone is not None:
        problems.append(tone_verdict(audio, tone.hz, tone.min_ms, rec.instance))
    if silence is not None:
        limit = silence.max_dbfs if isinstance(silence, ExpectSilence) else SILENCE_DBFS
        problems.append(silence_verdict(audio, limit, silence is not False, rec.instance))
    found = [p for p in problems if p]
    if found:
        raise StepFailed(found[0], expected=_expected(tone, silence), actual="; ".join(found),
                         detail=[f"recording: {rec.path}"])
    return f"heard as expected ({_expected(tone, silence)}, {audio.duration_ms:.0f} ms recorded)"


def _expected(tone: ExpectTone | None, silence: bool | ExpectSilence | None) -> str:
    parts = []
    if tone is not None:
        parts.append(f"a {tone.hz:g} Hz tone ≥ {tone.min_ms:g} ms")
    if silence is not None:
        limit = silence.max_dbfs if isinstance(silence, ExpectSilence) else SILENCE_DBFS
        parts.append(f"silence below {limit:g} dBFS" if silence is not False
                     else f"sound at {limit:g} dBFS or more")
    return " and ".join(parts)


def send_inband(phone: Phone, key: str, digits: str, gap_ms: float,
                abort: threading.Event) -> None:
    """Tones into the call; returns once the last one has been played."""
    reply = phone.request("dtmf_inband", call=phone.handle(key), digits=digits,
                          gap_ms=int(gap_ms))
    if abort.wait(float(reply.get("ms", 0)) / 1000.0):
        raise Interrupted()


def wait_inband(phone: Phone, key: str, expected: str | None, timeout: float,
                abort: threading.Event, own_path: Path, node: str) -> str:
    """The next ``len(expected)`` (or one) digits heard in the call's received audio."""
    rec = running(phone, key)
    own = rec is None
    if rec is None:
        rec = start(phone, key, own_path, node)
    want = len(expected) if expected else 1
    end = time.monotonic() + timeout
    heard = ""
    try:
        while True:
            try:
                heard = heard_digits(read_growing_wav(rec.path))[rec.digits_taken:]
            except AudioError as exc:
                raise StepFailed(f"cannot analyse the recording: {exc}") from None
            if expected and heard[:want] != expected[:len(heard[:want])]:
                i = next(i for i, (a, b) in enumerate(zip(heard, expected)) if a != b)
                raise StepFailed(f"wrong in-band DTMF digit {heard[i]!r} at position {i + 1}",
                                 expected=expected, actual=heard[:want],
                                 detail=[f"recording: {rec.path}"])
            if len(heard) >= want:
                rec.digits_taken += want
                return heard[:want]
            if rec.running and not phone.box.is_live(rec.handle):
                finish(phone, rec)  # the call ended: the file's tail is written, look again
                continue
            if time.monotonic() >= end or not rec.running:
                timed_out = rec.running
                what = (f"within {in_ms(timeout)}" if timed_out
                        else "before the call ended")
                raise StepFailed(f"no in-band DTMF on callId {key!r} {what}"
                                 + (f" after {heard!r}" if heard else ""),
                                 expected=expected or "a DTMF digit (in-band)",
                                 actual=heard or "no digit heard", timed_out=timed_out,
                                 detail=[f"recording: {rec.path}"])
            if abort.wait(POLL_S):
                raise Interrupted()
    finally:
        if own and rec.open:
            try:
                stop(phone, key)
            except StepFailed:
                pass
