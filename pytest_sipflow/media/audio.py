"""What a side heard: read a recorded WAV and find tones, silence and in-band DTMF.

Pure Python (``wave`` + ``array``): each frequency's Goertzel power is computed as a
single-bin DFT against precomputed tables with ``sum(map(mul, …))`` so the per-sample work
runs in C. Also writes the tone / DTMF / silence WAVs that tests and scenarios play.
"""

from __future__ import annotations

import math
import sys
import wave
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from operator import mul
from pathlib import Path

from ..errors import SipflowError

FULL_SCALE = 32768.0
DTMF_ROWS = (697.0, 770.0, 852.0, 941.0)
DTMF_COLS = (1209.0, 1336.0, 1477.0, 1633.0)
DTMF_KEYS = ("123A", "456B", "789C", "*0#D")
WINDOW_MS = 20.0   # analysis window: 50 Hz resolution separates the DTMF rows
HOP_MS = 10.0      # frames overlap by half; a run of k frames stands for k × 10 ms


class AudioError(SipflowError):
    """A WAV file that cannot be analysed (missing, not PCM, not 16-bit)."""


@dataclass(frozen=True)
class Audio:
    """Mono 16-bit samples (channels averaged) and their rate."""

    samples: array
    rate: int

    @property
    def duration_ms(self) -> float:
        return 1000.0 * len(self.samples) / self.rate


def read_wav(path: str | Path) -> Audio:
    """A 16-bit PCM WAV, any rate, mono or multi-channel (mixed down to mono)."""
    try:
        with wave.open(str(path), "rb") as w:
            width, channels, rate = w.getsampwidth(), w.getnchannels(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except (OSError, EOFError, wave.Error) as exc:
        raise AudioError(f"cannot read WAV {path}: {exc}") from exc
    if width != 2:
        raise AudioError(f"{path}: {8 * width}-bit samples; only 16-bit PCM is analysed")
    data = array("h")
    data.frombytes(raw[: len(raw) - len(raw) % 2])
    if sys.byteorder == "big":
        data.byteswap()
    if channels > 1:
        data = array("h", (sum(data[i:i + channels]) // channels
                           for i in range(0, len(data) - channels + 1, channels)))
    return Audio(data, rate)


def write_wav(path: str | Path, samples: Sequence[int], rate: int) -> Path:
    """Write mono 16-bit PCM."""
    data = array("h", samples)
    if sys.byteorder == "big":
        data.byteswap()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(data.tobytes())
    return Path(path)


# -- generators ----------------------------------------------------------------------------


def _amplitude(level_dbfs: float) -> float:
    return (FULL_SCALE - 1) * 10 ** (level_dbfs / 20)


def tone(freqs: float | Sequence[float], ms: float, rate: int = 8000,
         level_dbfs: float = -10.0) -> array:
    """Sum of sines, each at ``level_dbfs`` peak."""
    fs = [freqs] if isinstance(freqs, (int, float)) else list(freqs)
    amp = _amplitude(level_dbfs)
    n = round(rate * ms / 1000)
    steps = [2 * math.pi * f / rate for f in fs]
    return array("h", (round(amp * sum(math.sin(s * i) for s in steps)) for i in range(n)))


def silence(ms: float, rate: int = 8000) -> array:
    return array("h", bytes(2 * round(rate * ms / 1000)))


def dtmf(digits: str, tone_ms: float = 100.0, gap_ms: float = 100.0, rate: int = 8000,
         level_dbfs: float = -10.0) -> array:
    """In-band DTMF: each digit a row + column pair, separated by silence."""
    out = array("h")
    for digit in digits.upper():
        row = next((r for r, keys in enumerate(DTMF_KEYS) if digit in keys), None)
        if row is None:
            raise AudioError(f"not a DTMF digit: {digit!r} (allowed: 0-9 * # A-D)")
        col = DTMF_KEYS[row].index(digit)
        out += tone((DTMF_ROWS[row], DTMF_COLS[col]), tone_ms, rate, level_dbfs)
        out += silence(gap_ms, rate)
    return out


def write_tone_wav(path: str | Path, hz: float, ms: float, rate: int = 8000,
                   level_dbfs: float = -10.0) -> Path:
    return write_wav(path, tone(hz, ms, rate, level_dbfs), rate)


def write_dtmf_wav(path: str | Path, digits: str, tone_ms: float = 100.0,
                   gap_ms: float = 100.0, rate: int = 8000) -> Path:
    return write_wav(path, dtmf(digits, tone_ms, gap_ms, rate), rate)


def write_silence_wav(path: str | Path, ms: float, rate: int = 8000) -> Path:
    return write_wav(path, silence(ms, rate), rate)


# -- analysis ------------------------------------------------------------------------------


def rms_dbfs(samples: Sequence[int]) -> float:
    """RMS level relative to full scale (32768); -inf for digital silence or no samples."""
    if not samples:
        return -math.inf
    energy = float(sum(map(mul, samples, samples)))
    if energy <= 0:
        return -math.inf
    return 10 * math.log10(energy / len(samples)) - 20 * math.log10(FULL_SCALE)


def is_silent(samples: Sequence[int], threshold_dbfs: float = -50.0) -> bool:
    """True when the whole signal's RMS is below ``threshold_dbfs``."""
    return rms_dbfs(samples) < threshold_dbfs


class _Bank:
    """Goertzel powers of a few frequencies over frames of ``n`` samples."""

    def __init__(self, freqs: Sequence[float], rate: int, n: int) -> None:
        self.n = n
        self.tables = [([math.cos(2 * math.pi * f * i / rate) for i in range(n)],
                        [math.sin(2 * math.pi * f * i / rate) for i in range(n)]) for f in freqs]

    def energies(self, frame: Sequence[int]) -> list[float]:
        """Energy of each frequency in ``frame``, on the same scale as the sum of squares."""
        out = []
        for cos, sin in self.tables:
            re = sum(map(mul, frame, cos))
            im = sum(map(mul, frame, sin))
            out.append(2 * (re * re + im * im) / self.n)
        return out


def _frames(samples: Sequence[int], rate: int) -> tuple[int, int, list[Sequence[int]]]:
    n = max(1, round(rate * WINDOW_MS / 1000))
    hop = max(1, round(rate * HOP_MS / 1000))
    return n, hop, [samples[i:i + n] for i in range(0, len(samples) - n + 1, hop)]


def _loud(frame: Sequence[int], energy: float, floor_dbfs: float) -> bool:
    return energy > 0 and 10 * math.log10(energy / len(frame)) - 20 * math.log10(
        FULL_SCALE) >= floor_dbfs


@dataclass(frozen=True)
class ToneRun:
    """The longest stretch where ``hz`` dominated; ``found`` when it lasted ``min_ms``."""

    hz: float
    longest_ms: float
    start_ms: float | None
    found: bool


def detect_tone(samples: Sequence[int], rate: int, hz: float, min_ms: float = 100.0,
                dominance: float = 0.5, floor_dbfs: float = -45.0) -> ToneRun:
    """Longest run of frames in which ``hz`` carries ≥ ``dominance`` of the frame's energy."""
    n, hop, frames = _frames(samples, rate)
    bank = _Bank([hz], rate, n)
    best = (0, -1)
    run_start, run = -1, 0
    for i, frame in enumerate(frames):
        energy = float(sum(map(mul, frame, frame)))
        hit = _loud(frame, energy, floor_dbfs) and bank.energies(frame)[0] >= dominance * energy
        if hit:
            run_start = i if run == 0 else run_start
            run += 1
            best = max(best, (run, run_start))
        else:
            run = 0
    frames_ms = 1000.0 * hop / rate
    longest = best[0] * frames_ms
    start = None if best[1] < 0 else 1000.0 * (best[1] * hop + n / 2) / rate
    return ToneRun(hz, longest, start, longest >= min_ms and best[0] > 0)


def _dtmf_frame(bank: _Bank, frame: Sequence[int], floor_dbfs: float) -> str | None:
    """The digit this frame holds, or None: level, dominance, twist and energy-share checks."""
    energy = float(sum(map(mul, frame, frame)))
    if not _loud(frame, energy, floor_dbfs):
        return None
    e = bank.energies(frame)
    rows, cols = e[:4], e[4:]
    r = max(range(4), key=rows.__getitem__)
    c = max(range(4), key=cols.__getitem__)
    er, ec = rows[r], cols[c]
    if er <= 0 or ec <= 0:
        return None
    if any(v * 2 > er for i, v in enumerate(rows) if i != r):
        return None   # another row within 3 dB: not one clean row tone
    if any(v * 2 > ec for i, v in enumerate(cols) if i != c):
        return None
    if abs(10 * math.log10(er / ec)) > 8:
        return None   # twist: the two tones' levels differ by more than 8 dB
    if er + ec < 0.4 * energy:
        return None   # the pair is not what the frame mostly holds (speech, noise, tail)
    return DTMF_KEYS[r][c]


def detect_dtmf(samples: Sequence[int], rate: int, min_ms: float = 40.0,
                floor_dbfs: float = -45.0) -> str:
    """The in-band DTMF digits in ``samples``, e.g. ``"123#"``.

    A digit counts when it holds for ``min_ms`` (frames of 20 ms every 10 ms); a single
    dropped frame inside a digit is bridged, so a digit is reported once.
    """
    n, hop, frames = _frames(samples, rate)
    bank = _Bank(DTMF_ROWS + DTMF_COLS, rate, n)
    labels = [_dtmf_frame(bank, f, floor_dbfs) for f in frames]
    need = math.ceil(min_ms / (1000.0 * hop / rate) - 1e-9)
    digits: list[str] = []
    current, count, gap = None, 0, 0
    for label in labels + [None, None]:
        if label is not None and label == current and gap <= 1:
            count += 1
            gap = 0
        elif label is None and current is not None and gap < 1:
            gap += 1
        else:
            if current is not None and count >= need:
                digits.append(current)
            current, count, gap = label, (1 if label else 0), 0
    return "".join(digits)
