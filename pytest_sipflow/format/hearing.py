"""The keys of what a side heard: ``RecordAudio``'s checks (strict models, so a typo or an
impossible value is refused when the scenario loads) and the in-band DTMF key rules."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool
from pydantic.alias_generators import to_camel

from .fields import KeyProblem

#: ``expectSilence: true`` means quieter than this (RMS, dB below full scale).
SILENCE_DBFS = -50.0
#: Shortest gap between in-band tones the receiver still hears as two digits (ms).
INBAND_MIN_GAP_MS = 40


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True,
                              frozen=True)


class ExpectTone(_Check):
    """A tone of ``hz`` lasting at least ``min_ms`` somewhere in the recording."""

    hz: Annotated[float, Field(strict=True, gt=0, lt=8000)]
    min_ms: Annotated[float, Field(strict=True, ge=0)] = 100.0


class ExpectSilence(_Check):
    """The whole recording is quieter than ``max_dbfs`` (RMS against full scale)."""

    max_dbfs: Annotated[float, Field(strict=True, le=0)] = SILENCE_DBFS


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


#: DTMFReceived's ``method``: None (RFC 2833 or SIP INFO) or "inband" (tones in the audio).
InbandMethod = Annotated[Literal["inband"] | None, BeforeValidator(_lower)]
SilenceKey = StrictBool | ExpectSilence | None


def check_record_audio(action: str, file_path: str | None, tone: Any, silence: Any) -> None:
    """RecordAudio's keys that go together (checks on ``stop``, a file on ``start``)."""
    for key, value in (("expectTone", tone), ("expectSilence", silence)):
        if action == "start" and value is not None:
            raise KeyProblem(f"{key!r} judges a finished recording: put it on the RecordAudio "
                             'node with "action": "stop"', key)
    if action == "stop" and file_path is not None:
        raise KeyProblem("'filePath' names the file when recording starts; drop it from "
                         '"action": "stop"', "filePath")
    if file_path is not None and not file_path.lower().endswith(".wav"):
        raise KeyProblem("'filePath' must name a .wav file (recordings are WAV)", "filePath")


def check_inband_send(method: str, interval_ms: float) -> None:
    if method == "inband" and interval_ms < INBAND_MIN_GAP_MS:
        raise KeyProblem(f"in-band digits need a gap of at least {INBAND_MIN_GAP_MS} ms between "
                         "tones (intervalMs), or the receiver hears one long digit", "intervalMs")


def check_inband_wait(method: str | None, absent: bool, expect_headers: Any) -> None:
    if method == "inband" and (absent or expect_headers):
        key = "absent" if absent else "expectHeaders"
        raise KeyProblem(f"{key!r} is not supported with method 'inband' (tones in the audio: "
                         "no SIP message, no event to wait for)", key)
