"""The ``expectMedia`` key of CONNECTED, DISCONNECTED and MEDIA nodes, and the SRTP keys of
a sipInstance: the check's model is ``media.checks.ExpectMedia``; this adds the format's
did-you-mean for a mistyped key inside it.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any

from pydantic import BeforeValidator

from ..media.checks import ExpectMedia
from .fields import KeyProblem

#: Keys that judge packets: meaningless the moment a call is confirmed (nothing flowed yet).
PACKET_KEYS = ("received", "sent", "minPackets", "maxLossPercent", "maxJitterMs", "minMos")
SRTP_USES = ("disabled", "optional", "mandatory")
SRTP_KEYINGS = ("sdes", "dtls")


def _known_keys(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    known = ExpectMedia.known_keys()
    snake = list(ExpectMedia.model_fields)
    for key in value:
        if key in known or key in snake:
            continue
        close = [k for k in known if k.lower() == str(key).lower()] or \
            difflib.get_close_matches(str(key), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
        raise KeyProblem(f"unknown key {key!r} in expectMedia{hint}", f"expectMedia.{key}")
    return value


ExpectMediaKey = Annotated[ExpectMedia | None, BeforeValidator(_known_keys)]


def packet_keys(expect: ExpectMedia | None) -> list[str]:
    """The packet-judging keys ``expect`` sets (camelCase, as written)."""
    if expect is None:
        return []
    set_keys = expect.model_dump(by_alias=True, exclude_none=True)
    return [k for k in PACKET_KEYS if k in set_keys]


def lower_choice(value: Any, choices: tuple[str, ...], what: str) -> Any:
    """A case-insensitive choice, refused with the allowed values."""
    if not isinstance(value, str):
        return value
    if value.lower() not in choices:
        raise ValueError(f"unknown {what} {value!r}; allowed: {', '.join(choices)}")
    return value.lower()
