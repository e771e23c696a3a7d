"""The one reader of ``host:port`` text (registrar options, pbxHost, trace addresses).

``host``, ``host:port``, ``[v6]``, ``[v6]:port`` and a bare IPv6 address (no port).
"""

from __future__ import annotations


def split_host_port(text: str) -> tuple[str, int | None]:
    """(host, port or None); a port that is not a number is a ValueError naming it."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, _port(rest[1:], text) if rest.startswith(":") else None
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, _port(port, text)
    return text, None


def split_address(address: str) -> tuple[str, int]:
    """A recorded ``ip:port`` for display and pcap: lenient, port 0 when there is none."""
    try:
        host, port = split_host_port(address)
    except ValueError:
        return address, 0
    return host, port or 0


def _port(text: str, whole: str) -> int:
    if not text.strip().isdigit():
        raise ValueError(f"port {text!r} of {whole!r} is not a number")
    return int(text)
