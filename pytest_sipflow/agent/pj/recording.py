"""What a call received, recorded to WAV, and in-band DTMF (audio tones) sent into a call.

A recorder listens to the call's audio port: the WAV (16-bit mono at the bridge's clock
rate) holds only what the peer sent. It is finalized when stopped, at reset, or never
while running: the pytest side reads a running recording's data as it grows.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pjsua2 as pj

from ..rules import OpError
from .ops import op
from .state import AgentState, pj_error_text

#: Digit tone, gap and level of in-band DTMF when the request gives none (ms, ms, 0-32767).
TONE_MS, GAP_MS, VOLUME = 100, 100, 8000


def _audio(st: AgentState, args: dict[str, Any]) -> Any:
    call = st.get_call(args)
    st.require_confirmed(call)
    try:
        return call, call.getAudioMedia(-1)
    except pj.Error as exc:
        raise OpError(f"call {call.handle} has no active audio: {pj_error_text(exc)}")


@op("record_start")
def record_start(st: AgentState, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
    call, media = _audio(st, args)
    path = args.get("path")
    if not isinstance(path, str) or not path.lower().endswith(".wav"):
        raise OpError("'path' must name a .wav file")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise OpError(f"cannot write {path}: {folder} is not a writable folder")
    recorder = pj.AudioMediaRecorder()
    try:
        recorder.createRecorder(path)
        media.startTransmit(recorder)
    except pj.Error as exc:
        raise OpError(f"cannot record to {path}: {pj_error_text(exc)}")
    rec_id = st.next_record
    st.next_record += 1
    st.recorders[rec_id] = (call.handle, path, recorder)
    return {"record": rec_id, "path": path}


@op("record_stop")
def record_stop(st: AgentState, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Finalize the WAV (its header gets the sizes); a stopped recording is no error."""
    rec_id = args.get("record")
    entry = st.recorders.pop(rec_id, None) if isinstance(rec_id, int) else None
    if entry is None:
        if isinstance(rec_id, int) and 0 < rec_id < st.next_record:
            return {"record": rec_id, "stopped": False}
        raise OpError(f"unknown recording {rec_id!r}")
    path = entry[1]
    del entry  # the last reference: pjsua removes the port (on the bridge's next tick)
    finalize(st, [path])
    return {"record": rec_id, "path": path, "stopped": True}


def stop_recorders(st: AgentState) -> None:
    """At reset: every recording finalized, so the files are whole for the reports."""
    paths = [path for _, path, _ in st.recorders.values()]
    st.recorders.clear()
    finalize(st, paths)


def finalize(st: AgentState, paths: list[str], limit_s: float = 1.0) -> None:
    """Wait until the bridge has closed the files: their RIFF header then holds the sizes."""
    end = time.monotonic() + limit_s
    while paths and time.monotonic() < end:
        st.pump(10)
        paths = [p for p in paths if not _closed(p)]


def _closed(path: str) -> bool:
    try:
        with open(path, "rb") as wav:
            return wav.read(8)[4:8] not in (b"", b"\0\0\0\0")
    except OSError:
        return True  # nothing to wait for


@op("dtmf_inband")
def dtmf_inband(st: AgentState, req_id: Any, args: dict[str, Any]) -> dict[str, Any]:
    """Play the digits as tones into the call; replies at once with how long they take.

    The generator is handed to the graveyard, which destroys it once the digits are out."""
    call, media = _audio(st, args)
    digits = str(args.get("digits") or "").upper()
    if not digits or any(d not in "0123456789*#ABCD" for d in digits):
        raise OpError(f"invalid in-band DTMF digits {digits!r} (allowed 0-9 * # A-D)")
    on_ms = int(args.get("tone_ms", TONE_MS))
    off_ms = int(args.get("gap_ms", GAP_MS))
    if on_ms < 40 or off_ms < 40:
        raise OpError("tone_ms and gap_ms must be >= 40 (shorter digits are not detected)")
    vec = pj.ToneDigitVector()
    for digit in digits:
        tone = pj.ToneDigit()
        tone.digit, tone.on_msec, tone.off_msec, tone.volume = digit, on_ms, off_ms, VOLUME
        vec.append(tone)
    gen = pj.ToneGenerator()
    try:
        gen.createToneGenerator(8000, 1)
        gen.playDigits(vec, False)
        gen.startTransmit(media)
    except pj.Error as exc:
        raise OpError(f"in-band DTMF on call {call.handle}: {pj_error_text(exc)}")
    total_ms = len(digits) * (on_ms + off_ms)
    st.graveyard.append((time.monotonic() + total_ms / 1000 + 0.5, gen))
    return {"sent": digits, "ms": total_ms}
