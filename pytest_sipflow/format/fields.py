"""The value types node models share: headers, header checks, DTMF digits, codes, times.

Each refuses a bad value with a message that says what is allowed; ``KeyProblem`` names the
key to change when a combination of keys is refused.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, PlainValidator
from pydantic.alias_generators import to_camel

from ..sip import DTMF_DIGITS
from ..sip.checks import HeaderCheck, compile_checks

Millis = Annotated[float, Field(ge=0)]

# RFC 3261 token: a header name has no spaces, colons or line breaks.
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")


class KeyProblem(ValueError):
    """A refusal of a combination of keys, naming the key a user should change."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="ignore", alias_generator=to_camel, populate_by_name=True, frozen=True
    )

    @classmethod
    def known_keys(cls) -> list[str]:
        """The camelCase keys a file may write for this model (aliases included)."""
        keys: list[str] = []
        for name, info in cls.model_fields.items():
            if isinstance(info.validation_alias, AliasChoices):
                keys += [c for c in info.validation_alias.choices if isinstance(c, str)]
            else:
                keys.append(info.alias or name)
        return keys


def any_case(words: Any, empty: bool = True) -> str:
    """A JSON Schema pattern matching any of ``words`` in any case (and "" with ``empty``):
    what a validator that upper- or lower-cases its value accepts."""
    alternatives = "|".join("".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c
                                    for c in word) for word in words)
    return f"^({alternatives}){'?' if empty else ''}$"


def _text_number(value: Any) -> Any:
    """The editor sometimes writes numbers where the format says strings."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _dtmf(value: Any) -> Any:
    value = _text_number(value)
    if isinstance(value, str):
        value = value.upper()
        bad = sorted({c for c in value if c not in DTMF_DIGITS})
        if bad:
            raise ValueError(f"invalid DTMF digit(s) {''.join(bad)!r}; allowed: 0-9 * # A-D")
    return value


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except (re.error, OverflowError, RecursionError, ValueError) as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
    return value


def _header_name(name: str) -> None:
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"invalid header name {name!r}: a SIP header name is a non-empty "
                         "token without spaces, colons or line breaks")


# --- header lists --------------------------------------------------------------------------


def _headers(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError('headers is an object {"Name": "value", …}')
    for name, text in value.items():
        _header_name(name)
        if not isinstance(text, str):
            raise ValueError(f"header {name!r}: the value is a string (got {text!r})")
        if "\r" in text or "\n" in text:
            raise ValueError(f"header {name!r}: the value contains a line break")
    return dict(value)


def _expect_headers(value: Any) -> tuple[HeaderCheck, ...]:
    """``expectHeaders`` compiled by the one implementation of §4.9 (``sip.checks``)."""
    if not isinstance(value, dict):
        raise ValueError('expectHeaders is an object {"Name": check, …}')
    for name in value:
        _header_name(name)
    return compile_checks(value)  # ValueError naming the header for a bad check or regex


Headers = Annotated[dict[str, str], PlainValidator(_headers, json_schema_input_type=dict[str, str])]
ExpectHeaders = Annotated[tuple[HeaderCheck, ...],
                          PlainValidator(_expect_headers, json_schema_input_type=dict[str, Any])]
StatusCode = Annotated[int, Field(ge=100, le=699)]
FinalCode = Annotated[int, Field(ge=200, le=699)]
