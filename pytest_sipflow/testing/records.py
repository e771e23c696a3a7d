"""What the test server logged, read back: one line per request, one per registration.

The bundled ``kamailio.cfg`` writes these ``SIPFLOW-REQ``/``SIPFLOW-REG`` lines with xlog.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

_REQUEST = re.compile(r"SIPFLOW-REQ method=(\S+) from=(\S*) ruri=(\S*) proto=(\S+) "
                      r"src=(\S+) callid=(.*)$")
_REGISTERED = re.compile(r"SIPFLOW-REG aor=(\S+) contacts=(\d+) proto=(\S+) callid=(.*)$")
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
