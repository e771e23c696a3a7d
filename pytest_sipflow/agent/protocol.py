"""JSON-lines framing shared by the agent client (pytest side) and the agent (child).

One JSON object per ``\n``-terminated UTF-8 line, both ways, over an AF_UNIX stream
socket. Dependency-free, so the client never pulls in pjsua2 and the agent never pytest.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

#: A single line larger than this is a protocol error (a SIP trace line is a few KiB).
MAX_LINE = 8 * 1024 * 1024

class ProtocolError(Exception):
    """A line that is not a JSON object, or is too long."""


def encode(msg: dict[str, Any]) -> bytes:
    """One message → one line; never fails on content.

    ``default=str`` turns a stray non-JSON value into text. A lone surrogate (peer bytes
    that slipped through undecoded) cannot be UTF-8: then the line is written ASCII-only,
    with ``\\uXXXX`` escapes, which is still valid JSON — the sender never dies of it.
    """
    text = json.dumps(msg, ensure_ascii=False, separators=(",", ":"), default=str)
    try:
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(msg, ensure_ascii=True, separators=(",", ":"), default=str)
                + "\n").encode("ascii")


def decode(line: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"bad line {line[:200]!r}: {exc}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError(f"line is not a JSON object: {line[:200]!r}")
    return obj


class LineReader:
    """Buffered reader of JSON lines from a stream socket (one reader thread only)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()

    def read(self) -> dict[str, Any] | None:
        """Next message, or None at EOF (peer closed). Raises OSError/ProtocolError."""
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                if not line.strip():
                    continue
                return decode(line)
            if len(self._buf) > MAX_LINE:
                raise ProtocolError(f"line longer than {MAX_LINE} bytes")
            chunk = self._sock.recv(65536)
            if not chunk:
                return None
            self._buf += chunk


class LineWriter:
    """Locked writer: several threads (requests, callbacks) may send at once."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.Lock()

    def send(self, msg: dict[str, Any]) -> None:
        data = encode(msg)
        with self._lock:
            self._sock.sendall(data)
