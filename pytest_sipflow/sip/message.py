"""SIP message text: parsing, header lookup, SDP direction, and bytes → text that never fails.

Pure functions over bytes/str (no pjsua2, no pytest), used by the agent for its events
and by reports for traces. Parsing is *tolerant*: whatever arrives on a SIP port (legacy
Latin-1 headers, garbage, truncated packets) gives a message object, never an exception,
because an agent must survive any input and still report it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterator

#: Compact header forms → full names (RFC 3261 §7.3.3 and the extensions that define them).
COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "r": "Refer-To",
    "b": "Referred-By",
    "o": "Event",
    "u": "Allow-Events",
    "x": "Session-Expires",
}

_STATUS_RE = re.compile(r"^SIP/2\.0[ \t]+(\d{3})(?:[ \t]+(.*))?$", re.IGNORECASE)
_REQUEST_RE = re.compile(r"^([A-Za-z][A-Za-z0-9._!%*+`'~-]*)[ \t]+(\S+)[ \t]+SIP/2\.0$",
                         re.IGNORECASE)


def decode_text(raw: bytes) -> str:
    """Readable text of raw SIP bytes; never fails.

    UTF-8 when the bytes are valid UTF-8 (RFC 3261's charset), else Latin-1, which maps
    every byte to a character (legacy PBXs send ISO-8859-1 display names).
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def raw_of(text: str) -> bytes:
    """The original bytes of a string handed over by SWIG/``os`` with surrogate escapes.

    pjsua2's SWIG layer decodes C strings as UTF-8 with ``surrogateescape``: a Latin-1
    byte 0xE9 arrives as ``'\\udce9'``. Re-encoding the same way gives the bytes back.
    """
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no byte produced: keep what we can
        return text.encode("utf-8", "replace")


def readable(text: str) -> str:
    """``text`` safe to encode as UTF-8 (JSON, reports): surrogate escapes are decoded."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return decode_text(raw_of(text))


def canonical_name(name: str) -> str:
    """Header name as reported: compact forms expanded, otherwise as written."""
    name = name.strip()
    if len(name) == 1:
        return COMPACT.get(name.lower(), name)
    return name


class Headers:
    """Ordered, multi-valued SIP headers with case-insensitive, compact-aware lookup."""

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self.items: list[tuple[str, str]] = list(items or [])

    def add(self, name: str, value: str) -> None:
        self.items.append((canonical_name(name), value))

    def get_all(self, name: str) -> list[str]:
        key = canonical_name(name).lower()
        return [v for n, v in self.items if n.lower() == key]

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.get_all(name)
        return values[0] if values else default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.get_all(name))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def as_dict(self) -> dict[str, str]:
        """Name → value, repeated headers joined with ", " under their first spelling
        (the ``incoming`` event's shape)."""
        out: dict[str, str] = {}
        spelling: dict[str, str] = {}
        for name, value in self.items:
            key = spelling.setdefault(name.lower(), name)
            out[key] = f"{out[key]}, {value}" if key in out else value
        return out


@dataclass
class SipMessage:
    """One SIP message as received or sent; fields are None where the text lacks them."""

    raw: bytes
    text: str
    start_line: str
    headers: Headers = field(default_factory=Headers)
    body: str = ""
    method: str | None = None        # requests: the method; responses: None
    request_uri: str | None = None
    status: int | None = None        # responses only
    reason: str | None = None

    @property
    def is_request(self) -> bool:
        return self.method is not None

    @property
    def is_response(self) -> bool:
        return self.status is not None

    def header_values(self, name: str) -> list[str]:
        """Every value of a header (case-insensitive, compact forms equal): what the header
        checks of ``sip.checks`` read, so a parsed message is their ``MessageLike``."""
        return self.headers.get_all(name)

    @property
    def call_id(self) -> str | None:
        value = self.headers.get("Call-ID")
        return value.strip() or None if value is not None else None

    @property
    def cseq(self) -> tuple[int | None, str | None]:
        """(number, method) of the CSeq header; (None, None) when missing or unreadable."""
        value = self.headers.get("CSeq")
        if not value:
            return None, None
        parts = value.split()
        number = int(parts[0]) if parts and parts[0].isdigit() else None
        return number, parts[1] if len(parts) > 1 else None


def parse(data: bytes | str) -> SipMessage:
    """Parse one SIP message, tolerantly (see module doc). ``str`` input may carry
    surrogate escapes (SWIG text); the original bytes are recovered from them."""
    raw = raw_of(data) if isinstance(data, str) else bytes(data)
    text = decode_text(raw)
    norm = text.replace("\r\n", "\n")
    head, sep, body = norm.partition("\n\n")
    lines = head.split("\n")
    start = lines[0].strip() if lines else ""
    msg = SipMessage(raw=raw, text=text, start_line=start, body=body if sep else "")
    m = _STATUS_RE.match(start)
    if m:
        msg.status = int(m.group(1))
        msg.reason = (m.group(2) or "").strip()
    else:
        m = _REQUEST_RE.match(start)
        if m:
            msg.method = m.group(1).upper()
            msg.request_uri = m.group(2)
    pairs: list[list[str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and pairs and pairs[-1][0]:
            pairs[-1][1] += " " + line.strip()   # continuation of the previous header
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not name or " " in name or "\t" in name:
            pairs.append(["", ""])  # junk line: a following continuation is not glued on
            continue
        pairs.append([canonical_name(name), value.strip()])
    msg.headers = Headers([(n, v) for n, v in pairs if n])
    return msg


_CALL_ID_RE = re.compile(r"^([ \t]*)(?:call-id|i)[ \t]*:(.*)$", re.IGNORECASE | re.MULTILINE)


def start_and_call_id(text: str) -> tuple[str, str | None]:
    """``parse(text)``'s start line and Call-ID, without parsing every header (the agent
    needs only these two for each message of its trace)."""
    norm = text.replace("\r\n", "\n")
    head = norm.partition("\n\n")[0]
    start, _, rest = head.partition("\n")
    m = _CALL_ID_RE.search(rest)
    if m is None:
        return start.strip(), None
    if m.group(1) or rest[m.end() + 1:m.end() + 2] in (" ", "\t"):  # folded lines: rare
        message = parse(text)
        return message.start_line, message.call_id
    return start.strip(), m.group(2).strip() or None


def summary(data: bytes | str) -> str:
    """The start line (what a ladder shows for the message)."""
    return parse(data).start_line


def sdp_direction(sdp: str) -> str:
    """Direction of the first audio stream of an SDP (media-level beats session-level;
    ``c=0.0.0.0`` with sendrecv is RFC 2543 hold, i.e. sendonly)."""
    session_dir = "sendrecv"
    media_dir: str | None = None
    in_audio = False
    seen_media = False
    hold_addr = False
    for raw_line in sdp.replace("\r\n", "\n").split("\n"):
        line = raw_line.strip()
        if line.startswith("m="):
            if seen_media and in_audio:
                break
            seen_media = True
            in_audio = line.startswith("m=audio")
            continue
        if line.startswith("c=") and line.endswith(" 0.0.0.0") and (in_audio or not seen_media):
            hold_addr = True
        if line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"):
            if not seen_media:
                session_dir = line[2:]
            elif in_audio:
                media_dir = line[2:]
    direction = media_dir or session_dir
    if hold_addr and direction == "sendrecv":
        direction = "sendonly"
    return direction


def sdp_crypto_suite(sdp: str) -> str | None:
    """The suite of the first ``a=crypto`` line of the first audio stream (RFC 4568), or
    None: in an SDP answer that is the suite SDES negotiated."""
    in_audio = False
    for raw_line in sdp.replace("\r\n", "\n").split("\n"):
        line = raw_line.strip()
        if line.startswith("m="):
            in_audio = line.startswith("m=audio")
        elif in_audio and line.startswith("a=crypto:"):
            parts = line[len("a=crypto:"):].split()
            return parts[1] if len(parts) > 1 else None
    return None


def sdp_with_audio_port(sdp: str, port: int) -> str:
    """The SDP with its first ``m=audio`` port replaced (a test's fault or relay)."""
    lines = sdp.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("m=audio "):
            parts = line.split(" ")
            parts[1] = str(port)
            lines[i] = " ".join(parts)
            break
    return "\n".join(lines)
