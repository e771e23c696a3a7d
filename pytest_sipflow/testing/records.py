"""What the test server logged, read back: one line per request, one per registration.

The bundled ``kamailio.cfg`` writes these ``SIPFLOW-REQ``/``-REG``/``-AUTH`` lines with xlog.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

_REQUEST = re.compile(r"SIPFLOW-REQ method=(\S+) from=(\S*) ruri=(\S*) proto=(\S+) "
                      r"src=(\S+) callid=(.*)$")
_REGISTERED = re.compile(r"SIPFLOW-REG aor=(\S+) contacts=(\d+) proto=(\S+) callid=(.*)$")
_CHALLENGE = re.compile(r"SIPFLOW-AUTH code=(\d+) method=(\S+) from=(\S*) indialog=(\d) "
                        r"stale=(\d) result=(-?\d+) callid=(.*)$")
#: Call-IDs of the readiness probes (``readiness.py``): never a test's request.
PROBE_PREFIX = "sipflow-probe-"


@dataclass(frozen=True)
class RequestLine:
    """One request the server received, parsed from its xlog line (``None`` = absent)."""

    method: str
    from_user: str | None
    ruri_user: str | None
    proto: str          # udp, tcp or tls: the transport it arrived on
    source: str         # "ip:port" it came from
    call_id: str


def requests_in(lines: Iterable[str], method: str | None = None) -> list[RequestLine]:
    """Requests logged in ``lines``, oldest first; probes left out."""
    found = []
    for line in lines:
        match = _REQUEST.search(line)
        if match is None or match.group(6).startswith(PROBE_PREFIX):
            continue
        m, fu, ru, proto, src, cid = match.groups()
        req = RequestLine(m, None if fu == "<null>" else fu,
                          None if ru == "<null>" else ru, proto, src, cid)
        if method is None or req.method == method.upper():
            found.append(req)
    return found


def registrations_in(lines: Iterable[str]) -> dict[str, int]:
    """AOR user -> contacts it had after its last accepted REGISTER (0: unregistered)."""
    left: dict[str, int] = {}
    for line in lines:
        match = _REGISTERED.search(line)
        if match is not None:
            left[match.group(1)] = int(match.group(2))
    return left


@dataclass(frozen=True)
class Challenge:
    """One 401/407 the server sent, parsed from its xlog line."""

    code: int           # 401 (REGISTER) or 407 (anything else)
    method: str
    from_user: str | None
    in_dialog: bool     # the request had a To tag (re-INVITE, BYE, REFER, ...)
    stale: bool         # the answer used an expired nonce: re-challenged with stale=true
    result: int         # pv_auth_check's code: -5 no credentials, -4 stale, -2 wrong password
    call_id: str


def challenges_in(lines: Iterable[str], method: str | None = None) -> list[Challenge]:
    """Challenges logged in ``lines``, oldest first, of one method or all."""
    found = []
    for line in lines:
        match = _CHALLENGE.search(line)
        if match is None:
            continue
        code, m, fu, dlg, stale, result, cid = match.groups()
        if method is None or m == method.upper():
            found.append(Challenge(int(code), m, None if fu == "<null>" else fu, dlg == "1",
                                   stale == "1", int(result), cid))
    return found
