"""Verdicts on what a side heard (``expectTone``, ``expectSilence``, in-band digits) as
expected-vs-heard sentences, and reading a recording that is still being written (its
WAV header holds no sizes yet). The keys' models live in ``format/hearing.py``.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from collections.abc import Sequence
from operator import mul
from pathlib import Path
from .audio import Audio, AudioError, detect_dtmf, detect_tone, read_wav, rms_dbfs

def tone_verdict(audio: Audio, hz: float, min_ms: float, who: str) -> str | None:
    """None when the tone was heard long enough, else what was heard instead."""
    run = detect_tone(audio.samples, audio.rate, hz, min_ms)
    if run.found:
        return None
    loudest = loudest_tone(audio)
    heard = f"loudest tone heard {loudest:g} Hz" if loudest else "no tone heard at all"
    return (f"{who} heard no {hz:g} Hz tone ≥ {min_ms:g} ms "
            f"(longest {run.longest_ms:.0f} ms; {heard}; level {_db(audio)})")


def silence_verdict(audio: Audio, limit: float, silent: bool, who: str) -> str | None:
    """``silent``: the level must stay below ``limit`` dBFS; else it must reach it."""
    level = rms_dbfs(audio.samples)
    if silent and level >= limit:
        loudest = loudest_tone(audio)
        tone = f"; loudest tone {loudest:g} Hz" if loudest else ""
        return f"{who} heard sound at {_db(audio)} (expected silence below {limit:g} dBFS{tone})"
    if not silent and level < limit:
        return f"{who} heard silence at {_db(audio)} (expected sound at {limit:g} dBFS or more)"
    return None


def loudest_tone(audio: Audio, segment_ms: float = 100.0, share: float = 0.6) -> float | None:
    """The frequency (Hz, to 1 Hz, below 3.9 kHz) that holds ``share`` of the loudest
    ``segment_ms`` of the recording, or None when no single tone does (silence, noise,
    speech, DTMF pairs). A search over the band, so only worth its ~0.2 s on a failure."""
    n = max(16, round(audio.rate * segment_ms / 1000))
    if len(audio.samples) < n:
        return None
    hop = n // 2
    start = max(range(0, len(audio.samples) - n + 1, hop),
                key=lambda i: sum(map(mul, audio.samples[i:i + n], audio.samples[i:i + n])))
    frame = audio.samples[start:start + n]
    energy = float(sum(map(mul, frame, frame)))
    if energy <= 0:
        return None
    top = min(audio.rate / 2, 4000) - 100  # telephone audio (G.711: 8 kHz) ends below 4 kHz
    half = frame[: n // 2]  # 20 Hz steps need no finer resolution than half the segment's
    coarse = max(_range(100, top, 20), key=lambda f: _power(half, f, audio.rate))
    best = max(_range(coarse - 20, coarse + 20, 1), key=lambda f: _power(frame, f, audio.rate))
    return best if _power(frame, best, audio.rate) >= share * energy else None


def _range(low: float, high: float, step: float) -> list[float]:
    return [low + i * step for i in range(int((high - low) / step) + 1) if low + i * step > 0]


def _power(frame: Sequence[int], hz: float, rate: int) -> float:
    """Energy of ``hz`` in ``frame`` on the scale of the frame's sum of squares."""
    w = 2 * math.pi * hz / rate
    re = sum(map(mul, frame, [math.cos(w * i) for i in range(len(frame))]))
    im = sum(map(mul, frame, [math.sin(w * i) for i in range(len(frame))]))
    return 2 * (re * re + im * im) / len(frame)


def heard_digits(audio: Audio) -> str:
    """In-band digits; a 16 kHz recording is halved first (DTMF lies below 1.7 kHz and the
    call's G.711 audio below 4 kHz), which makes each search of a growing file ~3× cheaper."""
    samples, rate = audio.samples, audio.rate
    if rate >= 16000 and rate % 2 == 0:
        samples = array("h", ((samples[i] + samples[i + 1]) // 2
                              for i in range(0, len(samples) - 1, 2)))
        rate //= 2
    return detect_dtmf(samples, rate)


def _db(audio: Audio) -> str:
    level = rms_dbfs(audio.samples)
    return "digital silence" if math.isinf(level) else f"{level:.0f} dBFS"


def read_growing_wav(path: str | Path) -> Audio:
    """The samples written so far to a 16-bit PCM WAV whose header still says 0 bytes.

    A finished file is read the ordinary way; a running recorder's file is read up to its
    last whole sample after the ``data`` chunk header."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise AudioError(f"cannot read WAV {path}: {exc}") from exc
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        if not raw:
            return Audio(array("h"), 16000)
        raise AudioError(f"{path}: not a RIFF/WAVE file")
    pos, rate, width, channels = 12, 16000, 2, 1
    while pos + 8 <= len(raw):
        tag, size = raw[pos:pos + 4], struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        if tag == b"fmt ":
            channels, rate = struct.unpack("<HI", raw[pos + 10:pos + 16])
            width = struct.unpack("<H", raw[pos + 22:pos + 24])[0] // 8
        elif tag == b"data":
            if size and pos + 8 + size <= len(raw):
                return read_wav(path)  # finalized: the standard reader
            break
        pos += 8 + size + (size & 1)
    else:
        return Audio(array("h"), rate)
    if width != 2 or channels != 1:
        raise AudioError(f"{path}: only 16-bit mono recordings are read while they grow")
    body = raw[pos + 8:]
    data = array("h")
    data.frombytes(body[: len(body) - len(body) % 2])
    if sys.byteorder == "big":
        data.byteswap()
    return Audio(data, rate)
