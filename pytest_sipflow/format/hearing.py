"""The keys that judge a recording (``RecordAudio`` with ``"action": "stop"``): strict
models, so a typo or an impossible value is refused when the scenario loads."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

#: ``expectSilence: true`` means quieter than this (RMS, dB below full scale).
SILENCE_DBFS = -50.0


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
