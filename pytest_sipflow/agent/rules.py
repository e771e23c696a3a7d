"""The agent's call-state and request rules that need no pjsua2, unit-tested on their own.

The pjsua2 side (``agent/pj``) reads numbers and text out of pjsua's objects and asks
these functions what they mean: hold direction, re-INVITE/REFER/REGISTER outcomes, the
reply to an op, codec priorities, URIs, TLS and DTMF arguments.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..sip import DTMF_DIGITS
from ..sip.address import split_address

#: pjsip's INVITE session states (``pjsip_inv_state``), by number.
STATE_NAMES = {0: "NULL", 1: "CALLING", 2: "INCOMING", 3: "EARLY", 4: "CONNECTING",
               5: "CONFIRMED", 6: "DISCONNECTED"}
#: Keys of ``configure``'s ``tls`` object.
TLS_KEYS = ("ca_file", "cert_file", "key_file", "key_password", "verify_server",
            "verify_client")
#: RFC 2976 INFO body pjsua writes for a DTMF digit (``application/dtmf-relay``).
DTMF_INFO_TYPE = "application/dtmf-relay"
DTMF_METHODS = ("rfc2833", "info")


class OpError(Exception):
    """A refused request; its text is the reply's ``error``."""


@dataclass(frozen=True)
class Outcome:
    """The reply a deferred op gets: ``ok`` with ``result``, or an ``error`` text."""

    ok: bool
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def state_name(st: int) -> str:
    return STATE_NAMES.get(st, str(st))


def hold_change(direction: str, remote_held: bool) -> str | None:
    """The event an SDP offer's audio ``direction`` means for a call: ``held`` when the
    peer stops sending to us (sendonly, inactive), ``retrieved`` when it starts again,
    None when nothing changes."""
    held = direction in ("sendonly", "inactive")
    if held and not remote_held:
        return "held"
    if not held and remote_held:
        return "retrieved"
    return None


def reinvite_outcome(code: int, final: bool, reason: str) -> Outcome | None:
    """Our hold/retrieve re-INVITE's reply, once its transaction is over (``final``);
    None while a response is provisional or the transaction still runs."""
    if code < 200 or not final:
        return None
    if code < 300:
        return Outcome(True, {"code": code})
    return Outcome(False, error=f"re-INVITE answered {code} {reason}")


def refer_outcome(code: int, final: bool, reason: str) -> Outcome:
    """A transfer's reply from a REFER status: the first status is the REFER's own
    response (2xx → 100 "Accepted"); only a final NOTIFY ≥ 300 is a failure."""
    if final and code >= 300:
        return Outcome(False, error=f"REFER failed: {code} {reason}")
    return Outcome(True, {"code": code})


_CHALLENGE_REALM = re.compile(r"^(?:WWW|Proxy)-Authenticate\s*:\s*Digest\b[^\r\n]*?"
                              r"\brealm\s*=\s*\"([^\"]*)\"", re.I | re.M)


def challenge_realms(message: str) -> list[str]:
    """The realms a 401/407 challenges for (its WWW-/Proxy-Authenticate headers)."""
    return list(dict.fromkeys(_CHALLENGE_REALM.findall(message)))


def register_outcome(op: str, where: str | None, answered: bool, strict: bool, code: int,
                     reason: str, error: str | None, result: dict[str, Any],
                     realms: Iterable[str] = ()) -> Outcome:
    """The reply of ``configure``/``register`` once REGISTER ended.

    Without a response of the server (``answered`` false) it is an error; ``strict``
    (configure) refuses anything but 2xx; otherwise every final response is a result.
    """
    detail = f" ({error})" if error else ""
    detail += "".join(f'; challenge realm "{realm}"' for realm in realms)
    if not answered:
        return Outcome(False, error=f"{op}: REGISTER to {where} failed: {code} {reason}{detail}")
    if strict and not 200 <= code < 300:
        return Outcome(False, error=f"{op}: registration to {where} refused: "
                                    f"{code} {reason}{detail}")
    return Outcome(True, result)


def message_outcome(code: int, reason: str) -> Outcome:
    if 200 <= code < 300:
        return Outcome(True, {"code": code, "reason": reason})
    return Outcome(False, error=f"send_message: MESSAGE answered {code} {reason}")


def check_status_code(code: int) -> int:
    if not 100 <= code <= 699:
        raise OpError(f"status code {code} not in 100-699")
    return code


def codec_priorities(available: Iterable[str], codecs: Any) -> dict[str, int]:
    """pjsua codec id → priority for a ``codecs`` list (first name highest, by full id
    such as ``PCMU/8000/1`` or by name); every codec not named gets 0 (disabled)."""
    if isinstance(codecs, str) or not isinstance(codecs, list) or not codecs:
        raise OpError("codecs must be a non-empty list of names")
    ids = list(available)
    wanted: dict[str, int] = {}
    for i, name in enumerate(codecs):
        key = str(name).lower()
        matches = [cid for cid in ids if cid.lower() == key or cid.split("/")[0].lower() == key]
        if not matches:
            known = sorted({cid.split("/")[0] for cid in ids})
            raise OpError(f"unknown codec {name!r} (available: {', '.join(known)})")
        for cid in matches:
            wanted.setdefault(cid, max(1, 255 - i))
    return {cid: wanted.get(cid, 0) for cid in ids}


def sip_uri(value: str, transport: str) -> str:
    """``host[:port]`` or a URI → a sip: URI with ``;transport=`` for TCP/TLS."""
    uri = value if value.startswith(("sip:", "sips:")) else f"sip:{value}"
    if transport != "UDP" and ";transport=" not in uri.lower():
        uri += f";transport={transport.lower()}"
    return uri


def uri_host(uri: str) -> str:
    """The host of a sip: URI (without port and parameters)."""
    hostport = uri.split(":", 1)[1].split(";", 1)[0].rsplit("@", 1)[-1]
    host, _ = split_address(hostport)
    return f"[{host}]" if ":" in host else host


def refer_to(uri: str) -> str:
    """The Refer-To value for ``uri``: in <> whenever it has parameters or headers, else a
    ``;transport=tcp`` would be read as a header parameter of Refer-To (RFC 3261 §20)."""
    if uri.startswith("<") or not any(c in uri for c in ";?,"):
        return uri
    return f"<{uri}>"


def id_uri(display: str, uri: str) -> str:
    """The account's From identity: ``"Display" <uri>`` (quotes escaped) or ``<uri>``."""
    if not display:
        return f"<{uri}>"
    quoted = display.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{uri}>'


def check_headers(headers: Any) -> dict[str, Any]:
    """An op's ``headers`` argument: an object (or absent)."""
    if headers is not None and not isinstance(headers, dict):
        raise OpError("'headers' must be an object")
    return headers or {}


def tls_settings(tls: Any) -> dict[str, Any]:
    """The TLS options of ``configure`` with their defaults (verify the server)."""
    if tls is None:
        tls = {}
    if not isinstance(tls, dict):
        raise OpError("'tls' must be an object")
    unknown = set(tls) - set(TLS_KEYS)
    if unknown:
        raise OpError(f"unknown tls option(s): {', '.join(sorted(unknown))}")
    out = {k: str(tls.get(k) or "") for k in ("ca_file", "cert_file", "key_file",
                                              "key_password")}
    for key in ("ca_file", "cert_file", "key_file"):
        if out[key] and not os.path.isfile(out[key]):
            raise OpError(f"tls {key}: file not found: {out[key]}")
    out["verify_server"] = bool(tls.get("verify_server", True))
    out["verify_client"] = bool(tls.get("verify_client", False))
    return out


@dataclass(frozen=True)
class DtmfRequest:
    digits: str
    method: str
    interval_ms: int
    headers: dict[str, Any]


def dtmf_request(args: dict[str, Any]) -> DtmfRequest:
    """The ``dtmf`` op's arguments, refused before any digit goes out."""
    digits = str(args.get("digits") or "").upper()
    if not digits:
        raise OpError("no digits")
    bad = sorted(set(digits) - set(DTMF_DIGITS))
    if bad:
        raise OpError(f"invalid DTMF digit(s) {''.join(bad)!r} (allowed 0-9 * # A-D)")
    method = str(args.get("method") or "rfc2833").lower()
    if method not in DTMF_METHODS:
        raise OpError(f"unknown DTMF method {method!r} (rfc2833 or info)")
    interval = int(args.get("interval_ms", 100))
    if interval < 0:
        raise OpError("interval_ms must be >= 0")
    headers = check_headers(args.get("headers") or {})
    if headers and method != "info":
        raise OpError("headers need method 'info' (RFC 2833 digits are RTP, not SIP)")
    return DtmfRequest(digits, method, interval, headers)


def dtmf_info_body(digit: str, duration_ms: int) -> str:
    return f"Signal={digit}\r\nDuration={duration_ms}\r\n"


def check_audio_file(path: Any) -> str:
    """``play``'s ``path``: an existing, readable file."""
    if not isinstance(path, str) or not path:
        raise OpError("missing 'path'")
    if not os.path.isfile(path):
        raise OpError(f"file not found: {path}")
    if not os.access(path, os.R_OK):
        raise OpError(f"file not readable: {path}")
    return path
