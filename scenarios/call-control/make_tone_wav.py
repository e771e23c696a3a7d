"""Regenerate tone-200ms.wav, the clip play-audio.sipflow.json plays.

200 ms of a 400 Hz square wave, 8 kHz, 16-bit, mono (3244 bytes). Integer samples only, so
the bytes are the same on every machine; tests/test_call_control.py checks that the
committed file equals what this script writes.

    python scenarios/call-control/make_tone_wav.py [OUTPUT]
"""

from __future__ import annotations

import io
import struct
import sys
import wave
from pathlib import Path

RATE = 8000
MILLIS = 200
FREQ = 400
AMPLITUDE = 8000

DEFAULT = Path(__file__).with_name("tone-200ms.wav")


def tone_bytes() -> bytes:
    half = RATE // FREQ // 2  # samples per half period
    samples = [AMPLITUDE if (i // half) % 2 == 0 else -AMPLITUDE
               for i in range(RATE * MILLIS // 1000)]
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return buf.getvalue()


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else DEFAULT
    out.write_bytes(tone_bytes())
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
