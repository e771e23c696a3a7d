"""A classic .pcap of an item's SIP messages, for Wireshark, ``tshark`` and ``sngrep -I``.

Rebuilt from the trace, not captured, so it needs no privileges and shows decrypted TLS
(details at ``pcap_bytes``). ``dpkt`` is imported only when a pcap is written.
"""

from __future__ import annotations

import io
import ipaddress
import os
from typing import IO, Any, Iterable, Mapping

from ..sip.address import split_address
from .trace import Hosts, SipRecord, wire_messages

ZERO_MAC = b"\x00" * 6


def pcap_bytes(records: Iterable[SipRecord | Mapping[str, Any]],
               secrets: Iterable[str] = ()) -> bytes:
    """The whole .pcap file as bytes.

    Rebuilt from the trace, not captured: each message on the wire once (``wire_messages``),
    with its real addresses, ports and wall-clock timestamp, as Ethernet frames (linktype 1,
    zero MAC addresses) carrying IPv4 or IPv6:

    * UDP: one datagram per message;
    * TCP: one segment per message (PSH|ACK, no handshake), sequence numbers counted per
      direction of each address pair so Wireshark reassembles streams;
    * TLS: the **decrypted** SIP text as plain TCP to and from the TLS port (5061 usually).
      Wireshark then shows "SIP" where the wire had TLS records; on the standard port it may
      try TLS first: use *Decode As… → SIP* if it does.

    A host that is not an IP address (a name) is written as a TEST-NET address (192.0.2.x,
    one per name, in order of appearance). Secrets are masked in the payload bytes (so a
    masked message may be shorter than the one sent). Packets are built with ``dpkt``,
    imported on first use so nothing is loaded unless a pcap is written.
    """
    out = io.BytesIO()
    write_pcap(records, out, secrets)
    return out.getvalue()


def write_pcap(records: Iterable[SipRecord | Mapping[str, Any]],
               file: str | os.PathLike[str] | IO[bytes],
               secrets: Iterable[str] = (), frames: Iterable[Any] = ()) -> int:
    """Write the pcap to a path or a binary file; returns the number of packets.

    ``frames``: Ethernet frames captured from the wire (``capture.Frame``: ``t``, ``data``),
    the call's RTP/RTCP, merged with the SIP messages in time order."""
    import dpkt

    secrets, frames = list(secrets), list(frames)
    if isinstance(file, (str, os.PathLike)):
        with open(file, "wb") as handle:
            return write_pcap(records, handle, secrets, frames)
    writer = dpkt.pcap.Writer(file, linktype=dpkt.pcap.DLT_EN10MB)
    packets = [(frame.t, frame.data) for frame in frames]
    hosts = Hosts()
    seq: dict[tuple[str, str], int] = {}
    for record in wire_messages(records):
        record = record.masked(secrets)
        (src, sport), (dst, dport) = (split_address(record.source),
                                      split_address(record.destination))
        payload = record.data
        if record.transport == "UDP":
            segment: Any = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
            segment.ulen = len(segment)
            proto = dpkt.ip.IP_PROTO_UDP
        else:  # TCP, and TLS written decrypted over TCP
            flow, back = (record.source, record.destination), (record.destination, record.source)
            segment = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq.get(flow, 1),
                                   ack=seq.get(back, 1), flags=dpkt.tcp.TH_PUSH | dpkt.tcp.TH_ACK,
                                   win=65535, data=payload)
            seq[flow] = (seq.get(flow, 1) + len(payload)) & 0xFFFFFFFF
            proto = dpkt.ip.IP_PROTO_TCP
        packets.append((record.t, bytes(_frame(dpkt, hosts.ip(src), hosts.ip(dst), proto,
                                               segment))))
    packets.sort(key=lambda packet: packet[0])
    for t, data in packets:
        writer.writepkt(data, ts=t)
    return len(packets)


def _frame(dpkt: Any, src: ipaddress.IPv4Address | ipaddress.IPv6Address,
           dst: ipaddress.IPv4Address | ipaddress.IPv6Address, proto: int, segment: Any) -> Any:
    if src.version == 6 or dst.version == 6:
        src6, dst6 = (_v6(a) for a in (src, dst))
        packet = dpkt.ip6.IP6(src=src6.packed, dst=dst6.packed, nxt=proto, hlim=64,
                              data=segment, plen=len(segment))
        kind = dpkt.ethernet.ETH_TYPE_IP6
    else:
        packet = dpkt.ip.IP(src=src.packed, dst=dst.packed, p=proto, ttl=64, data=segment)
        kind = dpkt.ethernet.ETH_TYPE_IP
    # bytes() of the IP packet fills in the transport checksum; the frame embeds those bytes
    return dpkt.ethernet.Ethernet(src=ZERO_MAC, dst=ZERO_MAC, type=kind, data=bytes(packet))


def _v6(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    if address.version == 6:
        return address  # type: ignore[return-value]
    return ipaddress.IPv6Address("::ffff:" + str(address))
