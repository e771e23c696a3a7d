"""HEP3 (EEP) packets of an item's SIP messages, for a Homer / heplify-server capture node.

One packet per message on the wire (``wire_messages``), with its addresses, ports and
wall-clock time from the trace; TLS goes as its decrypted text with protocol TCP. The
correlation id is the SIP Call-ID. ``HepSender`` sends over UDP, fire-and-forget: a capture
node that is down or slow never fails a test.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..errors import SipflowError
from ..sip.address import split_address
from .trace import Hosts, SipRecord, wire_messages

MAGIC = b"HEP3"
VENDOR = 0  # generic chunks
FAMILY_IPV4, FAMILY_IPV6 = 2, 10  # AF_INET, AF_INET6 as the spec writes them
PROTO_UDP, PROTO_TCP = 17, 6
TYPE_SIP, TYPE_RTCP_JSON = 1, 5  # chunk 0x000b values

# chunk type ids (vendor 0)
FAMILY, PROTO, SRC4, DST4, SRC6, DST6, SPORT, DPORT = 1, 2, 3, 4, 5, 6, 7, 8
TS_SEC, TS_USEC, PROTO_TYPE, CAPTURE_ID, AUTH_KEY, PAYLOAD, CORRELATION = 9, 10, 11, 12, 14, 15, 17
MAX_PACKET = 65507  # one UDP datagram over IPv4


class HepError(SipflowError):
    """A HEP packet that cannot be built or read, or a bad ``host:port`` target."""


@dataclass(frozen=True)
class HepPacket:
    """The chunks of one HEP3 packet; IPv4 and IPv6 may not be mixed (a v4 address
    becomes ``::ffff:a.b.c.d`` when the other one is v6)."""

    src_ip: str
    dst_ip: str
    src_port: int
    dst_port: int
    ts_sec: int
    ts_usec: int
    payload: bytes
    protocol: int = PROTO_UDP
    proto_type: int = TYPE_SIP
    capture_id: int = 0
    correlation_id: str | None = None
    auth_key: str | None = None

    @property
    def family(self) -> int:
        return FAMILY_IPV6 if ":" in self.src_ip or ":" in self.dst_ip else FAMILY_IPV4

    def encode(self) -> bytes:
        """The packet's bytes: ``HEP3``, total length, then the chunks in type order."""
        if len(self.payload) > MAX_PACKET:
            raise HepError(f"HEP payload of {len(self.payload)} bytes is larger than one "
                           "UDP datagram")
        six = self.family == FAMILY_IPV6
        src, dst = (_address(a, six) for a in (self.src_ip, self.dst_ip))
        chunks = [_chunk(FAMILY, struct.pack("!B", self.family)),
                  _chunk(PROTO, struct.pack("!B", self.protocol)),
                  _chunk(SRC6 if six else SRC4, src), _chunk(DST6 if six else DST4, dst),
                  _chunk(SPORT, struct.pack("!H", self.src_port)),
                  _chunk(DPORT, struct.pack("!H", self.dst_port)),
                  _chunk(TS_SEC, struct.pack("!I", self.ts_sec)),
                  _chunk(TS_USEC, struct.pack("!I", self.ts_usec)),
                  _chunk(PROTO_TYPE, struct.pack("!B", self.proto_type)),
                  _chunk(CAPTURE_ID, struct.pack("!I", self.capture_id))]
        if self.auth_key:
            chunks.append(_chunk(AUTH_KEY, self.auth_key.encode()))
        chunks.append(_chunk(PAYLOAD, self.payload))
        if self.correlation_id:
            chunks.append(_chunk(CORRELATION, self.correlation_id.encode()))
        size = 6 + sum(len(c) for c in chunks)
        if size > min(0xFFFF, MAX_PACKET):
            raise HepError(f"HEP packet of {size} bytes is larger than one UDP datagram")
        return MAGIC + struct.pack("!H", size) + b"".join(chunks)

    @classmethod
    def decode(cls, data: bytes) -> HepPacket:
        """Read a packet (unknown and vendor chunks are skipped)."""
        found = {type_id: value for vendor, type_id, value in decode_chunks(data)
                 if vendor == VENDOR}
        try:
            six = found[FAMILY][0] == FAMILY_IPV6
            src, dst = (found[SRC6], found[DST6]) if six else (found[SRC4], found[DST4])
            return cls(src_ip=str(ipaddress.ip_address(src)),
                       dst_ip=str(ipaddress.ip_address(dst)),
                       src_port=_int(found[SPORT]), dst_port=_int(found[DPORT]),
                       ts_sec=_int(found[TS_SEC]), ts_usec=_int(found[TS_USEC]),
                       payload=found.get(PAYLOAD, b""), protocol=found[PROTO][0],
                       proto_type=found[PROTO_TYPE][0],
                       capture_id=_int(found.get(CAPTURE_ID, b"\0\0\0\0")),
                       correlation_id=_text(found.get(CORRELATION)),
                       auth_key=_text(found.get(AUTH_KEY)))
        except (KeyError, IndexError, ValueError) as exc:
            raise HepError(f"HEP3 packet lacks or garbles chunk {exc}") from None


def decode_chunks(data: bytes) -> list[tuple[int, int, bytes]]:
    """(vendor id, type id, value) of every chunk, checking the header and lengths."""
    if len(data) < 6 or data[:4] != MAGIC:
        raise HepError("not a HEP3 packet (no 'HEP3' header)")
    (total,) = struct.unpack("!H", data[4:6])
    if total != len(data):
        raise HepError(f"HEP3 length field says {total} bytes, packet has {len(data)}")
    out, at = [], 6
    while at < total:
        if at + 6 > total:
            raise HepError(f"truncated chunk header at byte {at}")
        vendor, type_id, length = struct.unpack("!HHH", data[at:at + 6])
        if length < 6 or at + length > total:
            raise HepError(f"chunk {vendor}/{type_id} at byte {at} has bad length {length}")
        out.append((vendor, type_id, data[at + 6:at + length]))
        at += length
    return out


def _chunk(type_id: int, value: bytes) -> bytes:
    return struct.pack("!HHH", VENDOR, type_id, 6 + len(value)) + value


def _address(ip: str, six: bool) -> bytes:
    address = ipaddress.ip_address(ip)
    if six and address.version == 4:
        address = ipaddress.IPv6Address("::ffff:" + ip)
    return address.packed


def _int(value: bytes) -> int:
    return int.from_bytes(value, "big")


def _text(value: bytes | None) -> str | None:
    return value.decode("utf-8", "replace") if value is not None else None


def _stamp(t: float) -> tuple[int, int]:
    usec = round(t * 1_000_000)
    return usec // 1_000_000, usec % 1_000_000


def sip_packets(records: Iterable[SipRecord | Mapping[str, Any]], capture_id: int = 0,
                auth_key: str | None = None, secrets: Iterable[str] = ()) -> list[HepPacket]:
    """One SIP packet (type 1) per message on the wire, secrets masked in the payload.
    A host that is not an IP address gets a TEST-NET one, as in the pcap."""
    secrets, hosts = list(secrets), Hosts()
    out = []
    for record in wire_messages(records):
        record = record.masked(secrets)
        (src, sport), (dst, dport) = (split_address(record.source),
                                      split_address(record.destination))
        sec, usec = _stamp(record.t)
        out.append(HepPacket(str(hosts.ip(src)), str(hosts.ip(dst)), sport, dport, sec, usec,
                             record.data, PROTO_UDP if record.transport == "UDP" else PROTO_TCP,
                             TYPE_SIP, capture_id, record.sip_call_id, auth_key))
    return out


def rtcp_packet(report: Mapping[str, Any], call_id: str, source: str, destination: str,
                t: float, capture_id: int = 0, auth_key: str | None = None) -> HepPacket:
    """An RTCP report as JSON (type 5), correlated to the call by its SIP Call-ID.
    ``source``/``destination`` are the RTP ``ip:port`` ends."""
    (src, sport), (dst, dport) = split_address(source), split_address(destination)
    sec, usec = _stamp(t)
    payload = json.dumps(dict(report), separators=(",", ":")).encode()
    return HepPacket(src, dst, sport, dport, sec, usec, payload, PROTO_UDP, TYPE_RTCP_JSON,
                     capture_id, call_id, auth_key)


def media_packets(media: Mapping[str, Any], t: float, capture_id: int = 0,
                  auth_key: str | None = None) -> list[HepPacket]:
    """One type-5 packet per call of a run's media statistics (``MediaStats.to_dict()``
    dicts keyed by call): correlated by its ``sip_call_id`` (else the key), between its
    ``local_rtp`` and ``remote_rtp`` ends (``0.0.0.0:0`` when one is unknown)."""
    out = []
    for key, stats in media.items():
        if not isinstance(stats, Mapping):
            continue
        ends = [str(stats.get(k) or "0.0.0.0:0") for k in ("local_rtp", "remote_rtp")]
        out.append(rtcp_packet(stats, str(stats.get("sip_call_id") or key), ends[0], ends[1],
                               float(stats.get("t") or t), capture_id, auth_key))
    return out


def parse_target(target: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` of a capture node."""
    host, port = split_address(target.strip())
    if not host or not 0 < port < 65536:
        raise HepError(f"HEP target {target!r} is not host:port (e.g. 127.0.0.1:9060 or "
                       "[::1]:9060)")
    return host, port


class HepSender:
    """UDP datagrams to one capture node. ``send`` never raises: an unreachable node, a
    name that does not resolve or an oversized packet is counted in ``errors`` and
    remembered in ``last_error`` (for one warning at the end of the run)."""

    def __init__(self, target: str, capture_id: int = 0, auth_key: str | None = None) -> None:
        self.host, self.port = parse_target(target)
        self.capture_id, self.auth_key = capture_id, auth_key
        self.sent = self.errors = 0
        self.last_error = ""
        self._socket: socket.socket | None = None
        self._address: Any = None

    def send(self, packet: HepPacket) -> bool:
        try:
            data = packet.encode()
            sock = self._open()
            sock.sendto(data, self._address)
        except (OSError, HepError) as exc:
            self.errors += 1
            self.last_error = f"HEP to {self.host}:{self.port}: {exc}"
            return False
        self.sent += 1
        return True

    def send_records(self, records: Iterable[SipRecord | Mapping[str, Any]],
                     secrets: Iterable[str] = ()) -> int:
        """Send an item's SIP messages; returns how many went out."""
        return sum(self.send(p) for p in sip_packets(records, self.capture_id,
                                                     self.auth_key, secrets))

    def _open(self) -> socket.socket:
        if self._socket is None:
            family, kind, proto, _, address = socket.getaddrinfo(
                self.host, self.port, type=socket.SOCK_DGRAM)[0]
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)  # a full buffer drops the packet, never waits
            self._socket, self._address = sock, address
        return self._socket

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> HepSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
