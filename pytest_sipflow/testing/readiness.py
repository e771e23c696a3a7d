"""Ports for a test server and the probes that say it really answers (UDP, TCP, TLS).

Each pytest-xdist worker has its own block, so parallel workers never race for a port.
"""

from __future__ import annotations

import socket
import ssl
import uuid

from pytest_sipflow.format.worker import worker_index
from pytest_sipflow.sip import LOOPBACK

from .process import bindable
from .records import PROBE_PREFIX

#: First UDP/TCP port of worker 0; worker N starts at +10*N, TLS is the port above.
#: Far from the agents' SIP ports (5060-9999) and below their RTP ports (20000+).
BASE_PORT = 15060
PORTS_PER_WORKER = 10
_FALLBACK_STEP = 500       # further candidates: +500, +1000, ... (still below 20000)
_FALLBACK_ROUNDS = 8


class NoFreePorts(RuntimeError):
    """No port pair of this worker's block (nor the fallbacks above it) is free."""


def _port_free(port: int, kind: int) -> bool:
    return bindable(port, kind, LOOPBACK)


def _ports_free(sip: int, tls: int) -> bool:
    return (_port_free(sip, socket.SOCK_DGRAM) and _port_free(sip, socket.SOCK_STREAM)
            and _port_free(tls, socket.SOCK_STREAM))


def pick_ports(worker: int | None = None) -> tuple[int, int]:
    """(UDP/TCP port, TLS port) free now, from this worker's block, else further up."""
    worker = worker_index() if worker is None else worker
    first = BASE_PORT + PORTS_PER_WORKER * worker
    for rnd in range(_FALLBACK_ROUNDS + 1):
        for offset in range(0, PORTS_PER_WORKER, 2):
            sip = first + rnd * _FALLBACK_STEP + offset
            if sip + 1 <= 65535 and _ports_free(sip, sip + 1):
                return sip, sip + 1
    raise NoFreePorts(f"no free port pair for Kamailio from {first} (worker {worker})")


def options_probe(port: int, timeout: float, instance: str | None = None) -> bool:
    """True when a SIP OPTIONS sent to the UDP port gets any answer (with ``instance``:
    an answer carrying ``X-Sipflow-Instance: <instance>``, i.e. from that very server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        sock.settimeout(timeout)
        local = sock.getsockname()[1]
        tag = uuid.uuid4().hex[:12]
        msg = (f"OPTIONS sip:{LOOPBACK}:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {LOOPBACK}:{local};rport;branch=z9hG4bK{tag}\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:probe@{LOOPBACK}>;tag={tag}\r\n"
               f"To: <sip:{LOOPBACK}>\r\nCall-ID: {PROBE_PREFIX}{tag}\r\nCSeq: 1 OPTIONS\r\n"
               f"Content-Length: 0\r\n\r\n")
        try:
            sock.sendto(msg.encode(), (LOOPBACK, port))
            reply = sock.recv(4096)
        except OSError:
            return False
    if instance is not None:
        return f"\r\nX-Sipflow-Instance: {instance}\r\n".encode() in reply
    return reply.startswith(b"SIP/2.0 ")


def tcp_probe(port: int, timeout: float, tls: bool = False) -> bool:
    """True when the port accepts a connection (and, for TLS, completes a handshake)."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            if tls:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                with ctx.wrap_socket(sock):
                    pass
        return True
    except OSError:
        return False
