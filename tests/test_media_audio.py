"""Recorded-audio analysis on generated signals: tones found where they are and nowhere
else, silence, in-band DTMF through G.711 companding and noise, too-short digits refused."""

from __future__ import annotations

import math
import random
import warnings
from array import array
from pathlib import Path

import pytest

from pytest_sipflow.media import audio
from pytest_sipflow.media.audio import AudioError

ALL_DIGITS = "123A456B789C*0#D"


# -- G.711 companding (the reference algorithm, for the round trips) ----------------------

def ulaw_encode(sample: int) -> int:
    value, mask = sample >> 2, 0xFF     # 14-bit, as G.191's reference code
    if value < 0:
        value, mask = -value, 0x7F
    value = min(value, 8159) + 33
    segment = value.bit_length() - 6
    if segment >= 8:
        return 0x7F ^ mask
    return ((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask


def ulaw_decode(code: int) -> int:
    code = ~code & 0xFF
    exponent, mantissa = (code >> 4) & 7, code & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -magnitude if code & 0x80 else magnitude


def alaw_encode(sample: int) -> int:
    sign = 0x80 if sample >= 0 else 0
    magnitude = min(sample if sample >= 0 else -sample - 1, 32767) >> 3
    if magnitude < 32:
        exponent, mantissa = 0, magnitude >> 1
    else:
        exponent = magnitude.bit_length() - 5
        mantissa = (magnitude >> exponent) & 0x0F
    return (sign | (exponent << 4) | mantissa) ^ 0x55


def alaw_decode(code: int) -> int:
    code ^= 0x55
    exponent, mantissa = (code >> 4) & 7, code & 0x0F
    if exponent == 0:
        magnitude = (mantissa << 4) + 8
    else:
        magnitude = ((mantissa << 4) + 0x108) << (exponent - 1)
    return magnitude if code & 0x80 else -magnitude


def round_trip(samples: array, law: str) -> array:
    enc, dec = (ulaw_encode, ulaw_decode) if law == "ulaw" else (alaw_encode, alaw_decode)
    return array("h", (dec(enc(s)) for s in samples))


def with_noise(samples: array, snr_db: float, seed: int = 5) -> array:
    """White Gaussian noise at ``snr_db`` below the signal's power (taken over its loud part)."""
    loud = [s for s in samples if s]
    power = sum(s * s for s in loud) / len(loud)
    sigma = math.sqrt(power / 10 ** (snr_db / 10))
    rnd = random.Random(seed)
    return array("h", (max(-32768, min(32767, round(s + rnd.gauss(0, sigma))))
                       for s in samples))


def test_companding_matches_the_stdlib_codec() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    ramp = array("h", range(-32768, 32768, 97))
    raw = ramp.tobytes()
    assert bytes(ulaw_encode(s) for s in ramp) == audioop.lin2ulaw(raw, 2)
    assert bytes(alaw_encode(s) for s in ramp) == audioop.lin2alaw(raw, 2)
    codes = bytes(range(256))
    assert array("h", (ulaw_decode(c) for c in codes)).tobytes() == audioop.ulaw2lin(codes, 2)
    assert array("h", (alaw_decode(c) for c in codes)).tobytes() == audioop.alaw2lin(codes, 2)


# -- tones and silence ---------------------------------------------------------------------

@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.parametrize("law", [None, "ulaw", "alaw"])
def test_1khz_tone_is_found_and_400hz_is_not(rate: int, law: str | None) -> None:
    signal = audio.silence(300, rate) + audio.tone(1000, 600, rate) + audio.silence(300, rate)
    if law:
        signal = round_trip(signal, law)
    found = audio.detect_tone(signal, rate, 1000, min_ms=500)
    assert found.found and 580 <= found.longest_ms <= 620
    assert found.start_ms == pytest.approx(300, abs=15)
    other = audio.detect_tone(signal, rate, 400, min_ms=20)
    assert not other.found and other.longest_ms == 0


def test_a_tone_shorter_than_min_ms_is_reported_but_not_found() -> None:
    run = audio.detect_tone(audio.tone(1000, 200), 8000, 1000, min_ms=500)
    assert not run.found and 180 <= run.longest_ms <= 220


def test_silence_and_white_noise_are_not_tones() -> None:
    assert not audio.detect_tone(audio.silence(1000), 8000, 1000, min_ms=20).found
    rnd = random.Random(1)
    noise = array("h", (round(rnd.gauss(0, 3000)) for _ in range(8000)))
    assert audio.detect_tone(noise, 8000, 1000, min_ms=20).longest_ms == 0
    assert audio.detect_dtmf(noise, 8000) == ""


def test_silence_detection_by_level() -> None:
    assert audio.is_silent(audio.silence(500))
    assert audio.rms_dbfs(audio.silence(10)) == -math.inf
    quiet = audio.tone(1000, 500, level_dbfs=-70)
    assert audio.is_silent(quiet) and not audio.is_silent(audio.tone(1000, 500))
    assert audio.rms_dbfs(audio.tone(1000, 1000, level_dbfs=-10)) == pytest.approx(-13, abs=0.1)
    assert not audio.is_silent(quiet, threshold_dbfs=-80)


# -- DTMF ----------------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [8000, 16000])
def test_all_sixteen_dtmf_digits(rate: int) -> None:
    assert audio.detect_dtmf(audio.dtmf(ALL_DIGITS, 80, 60, rate), rate) == ALL_DIGITS


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
@pytest.mark.parametrize("digits", ["123#", ALL_DIGITS])
def test_dtmf_survives_g711_round_trip(law: str, digits: str) -> None:
    signal = round_trip(audio.dtmf(digits, 100, 100), law)
    assert audio.detect_dtmf(signal, 8000) == digits


@pytest.mark.parametrize("law", [None, "ulaw"])
def test_dtmf_with_noise_at_20_db_snr(law: str | None) -> None:
    signal = with_noise(audio.silence(200) + audio.dtmf(ALL_DIGITS, 70, 70), 20)
    if law:
        signal = round_trip(signal, law)
    assert audio.detect_dtmf(signal, 8000) == ALL_DIGITS


@pytest.mark.parametrize("offset_ms", [0, 2, 5, 7])
def test_20_ms_digit_is_refused_and_45_ms_digit_found(offset_ms: int) -> None:
    lead = audio.silence(100 + offset_ms)
    assert audio.detect_dtmf(lead + audio.dtmf("5", 20, 100), 8000) == ""
    assert audio.detect_dtmf(lead + audio.dtmf("5", 45, 100), 8000) == "5"


def test_repeated_digit_with_a_gap_is_two_digits_and_a_long_digit_one() -> None:
    assert audio.detect_dtmf(audio.dtmf("55", 100, 50), 8000) == "55"
    assert audio.detect_dtmf(audio.dtmf("7", 1500, 0), 8000) == "7"


def test_a_single_tone_or_two_row_tones_are_not_digits() -> None:
    assert audio.detect_dtmf(audio.tone(697, 300), 8000) == ""
    assert audio.detect_dtmf(audio.tone((697, 770, 1209), 300), 8000) == ""
    twisted = array("h", (a + b for a, b in zip(audio.tone(697, 300, level_dbfs=-6),
                                                 audio.tone(1209, 300, level_dbfs=-26))))
    assert audio.detect_dtmf(twisted, 8000) == ""


def test_generator_refuses_a_non_dtmf_character() -> None:
    with pytest.raises(AudioError, match="not a DTMF digit: 'E'"):
        audio.dtmf("1E")


# -- WAV files -----------------------------------------------------------------------------

def test_wav_writers_and_reader_round_trip(tmp_path: Path) -> None:
    wav = audio.read_wav(audio.write_dtmf_wav(tmp_path / "d.wav", "123#", rate=16000))
    assert wav.rate == 16000 and audio.detect_dtmf(wav.samples, wav.rate) == "123#"
    tone = audio.read_wav(audio.write_tone_wav(tmp_path / "t.wav", 1000, 700))
    assert tone.duration_ms == pytest.approx(700)
    assert audio.detect_tone(tone.samples, tone.rate, 1000, 600).found
    quiet = audio.read_wav(audio.write_silence_wav(tmp_path / "s.wav", 300, 8000))
    assert audio.is_silent(quiet.samples) and len(quiet.samples) == 2400


def test_stereo_is_mixed_down(tmp_path: Path) -> None:
    import wave
    left, right = audio.tone(1000, 500), audio.silence(500)
    frames = array("h", (v for pair in zip(left, right) for v in pair))
    with wave.open(str(tmp_path / "st.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(frames.tobytes())
    wav = audio.read_wav(tmp_path / "st.wav")
    assert len(wav.samples) == 4000
    assert wav.samples[2] == left[2] // 2
    assert audio.detect_tone(wav.samples, 8000, 1000, 400).found


def test_unreadable_wavs_raise_audio_error(tmp_path: Path) -> None:
    import wave
    with pytest.raises(AudioError, match="cannot read WAV"):
        audio.read_wav(tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"not a wav at all")
    with pytest.raises(AudioError, match="cannot read WAV"):
        audio.read_wav(tmp_path / "junk.wav")
    with wave.open(str(tmp_path / "u8.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(bytes(800))
    with pytest.raises(AudioError, match="8-bit samples; only 16-bit PCM"):
        audio.read_wav(tmp_path / "u8.wav")
