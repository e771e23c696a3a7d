"""Header checks of scenario-format §4.9: ``expectHeaders`` against one SIP message.

One implementation for scenario files and the Python API; compiled once at collection so a
bad check is a collection error (spec forms at ``compile_checks``). No SIP parsing here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping, Protocol

REQUEST_URI = "Request-URI"

#: The check kinds; ``present`` is ``{"absent": false}``.
KINDS = ("match", "notMatch", "absent", "present")


class MessageLike(Protocol):
    """What a check needs from a parsed SIP message."""

    is_request: bool
    method: str | None
    status: int | None
    reason: str
    request_uri: str | None

    def header_values(self, name: str) -> list[str]:
        """Every value of the header, in order; case-insensitive, compact forms equal."""
        ...


@dataclass(frozen=True)
class HeaderCheck:
    """One compiled check: the header name as written, its kind and its expression."""

    header: str
    kind: str  # one of KINDS
    pattern: re.Pattern[str] | None = None

    @classmethod
    def parse(cls, header: str, spec: object) -> HeaderCheck:
        """Compile a spec of §4.9; ``ValueError`` (naming the header) when it is not one."""
        if not isinstance(header, str) or not header.strip():
            raise ValueError(f"expectHeaders: empty header name {header!r}")
        if isinstance(spec, str):
            return cls(header, "match", _compile(header, spec))
        if isinstance(spec, Mapping) and set(spec) == {"absent"} and isinstance(spec["absent"], bool):
            return cls(header, "absent" if spec["absent"] else "present")
        if isinstance(spec, Mapping) and set(spec) == {"notMatch"} and isinstance(spec["notMatch"], str):
            return cls(header, "notMatch", _compile(header, spec["notMatch"]))
        raise ValueError(f"expectHeaders {header!r}: a check is a regex string, "
                         f'{{"absent": true}} or {{"notMatch": "regex"}}, not {spec!r}')

    @property
    def expected(self) -> str:
        """The check in words, for the ``expected:`` line of a failure."""
        if self.kind == "match":
            return f"to match '{self.pattern.pattern}'"  # type: ignore[union-attr]
        if self.kind == "notMatch":
            return f"not to match '{self.pattern.pattern}'"  # type: ignore[union-attr]
        return "absent" if self.kind == "absent" else "present"

    def values(self, message: MessageLike) -> list[str]:
        """The values this check looks at (the request URI for ``Request-URI``)."""
        if self.header.lower() == REQUEST_URI.lower():
            return [message.request_uri] if message.is_request and message.request_uri else []
        return list(message.header_values(self.header))

    def check(self, message: MessageLike) -> CheckFailure | None:
        """None when the message passes, else what failed."""
        values = self.values(message)
        if self.kind == "match":
            ok = any(self.pattern.search(v) for v in values)  # type: ignore[union-attr]
        elif self.kind == "notMatch":
            ok = not any(self.pattern.search(v) for v in values)  # type: ignore[union-attr]
        elif self.kind == "absent":
            ok = not values
        else:
            ok = bool(values)
        return None if ok else CheckFailure(self, tuple(values))


@dataclass(frozen=True)
class CheckFailure:
    """A failed check and the values it saw; ``str()`` is the report line."""

    check: HeaderCheck
    values: tuple[str, ...]

    @property
    def header(self) -> str:
        return self.check.header

    @property
    def expected(self) -> str:
        return self.check.expected

    @property
    def actual(self) -> str:
        """The value, the values joined by `` | `` (with their count), or ``absent``."""
        if not self.values:
            return "absent"
        if len(self.values) == 1:
            return self.values[0]
        return f"({len(self.values)} values) " + " | ".join(self.values)

    def __str__(self) -> str:
        return f"header '{self.header}': expected {self.expected} — actual: {self.actual}"


class HeaderCheckError(AssertionError):
    """Raised by ``assert_headers``; ``failures`` keeps the individual results."""

    def __init__(self, failures: list[CheckFailure]) -> None:
        super().__init__("\n".join(str(f) for f in failures))
        self.failures = failures


def compile_checks(spec: Mapping[str, object]) -> tuple[HeaderCheck, ...]:
    """Compile a whole ``expectHeaders`` object, in its order.

    A check spec (the JSON value under a header name) is one of

    * a string: a regular expression that ``re.search`` must find in a value of the header;
    * ``{"absent": true}``: the header must not be in the message (``{"absent": false}``: it
      must be there, whatever its value);
    * ``{"notMatch": "regex"}``: no value of the header may contain the expression (a missing
      header passes).

    A header that appears several times passes a regex check when *any* value matches; it
    fails ``notMatch`` when any value matches and ``absent`` when present at all. The name
    ``Request-URI`` checks the request line's URI (and fails on a response).

    Build the checks once, at collection (``compile_checks`` raises ``ValueError`` naming the
    header for a bad spec or regex), then run ``check_headers`` on each message. The module
    does not parse SIP: the message is anything shaped like ``MessageLike`` (the SIP text
    module's parsed message), which owns case-insensitive names and compact forms.
    """
    return tuple(HeaderCheck.parse(name, value) for name, value in spec.items())


def check_headers(message: MessageLike,
                  checks: Iterable[HeaderCheck] | Mapping[str, object]) -> list[CheckFailure]:
    """Every failed check, in the order of ``checks`` (a raw spec is compiled first)."""
    if isinstance(checks, Mapping):
        checks = compile_checks(checks)
    return [f for f in (c.check(message) for c in checks) if f is not None]


def assert_headers(message: MessageLike,
                   checks: Iterable[HeaderCheck] | Mapping[str, object]) -> None:
    """The Python API's form: raise ``HeaderCheckError`` with one line per failed check."""
    failures = check_headers(message, checks)
    if failures:
        raise HeaderCheckError(failures)


def _compile(header: str, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"expectHeaders {header!r}: invalid regular expression "
                         f"{pattern!r}: {exc}") from None
