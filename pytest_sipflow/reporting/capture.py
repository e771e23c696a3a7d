"""RTP/RTCP of an item taken from the wire, for the pcap beside the SIP rebuilt from the trace.

The agents' media never passes through the pytest process, so a raw ``AF_PACKET`` socket on
the loopback interface (Linux, needs CAP_NET_RAW) keeps the UDP datagrams whose port lies
in the run's RTP range. Without the privilege the capture says why, and the pcap has SIP only.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # the same datagram is seen again as it arrives: keep that copy only
ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
UDP = 17


@dataclass(frozen=True)
class Frame:
    """One Ethernet frame as the loopback interface carried it (zero MACs)."""

    t: float
    data: bytes
    ports: tuple[int, int]  # UDP source, destination


def udp_ports(frame: bytes) -> tuple[int, int] | None:
    """The UDP ports of an Ethernet frame carrying IPv4 or IPv6 UDP, else None."""
    if len(frame) < 14:
        return None
    kind = struct.unpack_from("!H", frame, 12)[0]
    if kind == ETH_IPV4 and len(frame) >= 34:
        ihl = (frame[14] & 0x0F) * 4
        if frame[23] != UDP or len(frame) < 14 + ihl + 4:
            return None
        start = 14 + ihl
    elif kind == ETH_IPV6 and len(frame) >= 58:
        if frame[20] != UDP:
            return None
        start = 54
    else:
        return None
    return struct.unpack_from("!HH", frame, start)  # type: ignore[return-value]


@dataclass
class WireCapture:
    """UDP on ``interface`` with a port in ``ports``, captured by a named thread."""

    ports: range
    interface: str = "lo"
    frames: list[Frame] = field(default_factory=list)
    problem: str | None = None  # why nothing is captured (no privilege, no interface)
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> WireCapture:
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except (OSError, AttributeError) as exc:
            self.problem = (f"RTP not captured: no raw socket ({exc}); capturing from the wire "
                            "needs Linux and CAP_NET_RAW (root, or setcap cap_net_raw+ep on the "
                            "Python binary)")
            return self
        try:
            sock.bind((self.interface, 0))
            sock.settimeout(0.1)
        except OSError as exc:
            sock.close()
            self.problem = f"RTP not captured: cannot listen on {self.interface}: {exc}"
            return self
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="sipflow-rtp-capture",
                                        daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                data, addr = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                break
            if addr[2] == PACKET_OUTGOING:
                continue
            ports = udp_ports(data)
            if ports is not None and (ports[0] in self.ports or ports[1] in self.ports):
                self.frames.append(Frame(time.time(), data, ports))

    def stop(self) -> list[Frame]:
        """End the capture (the thread is joined) and return what it kept."""
        self._stop.set()
        if self._thread is not None:
            self._wake()
            self._thread.join(timeout=2.0)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        return self.frames

    @staticmethod
    def _wake() -> None:
        """Any packet on loopback ends the reader's wait at once (not after its timeout)."""
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(b"\0", ("127.0.0.1", 9))  # discard port: nobody reads it
        except OSError:
            pass

    def of_ports(self, ports: set[int]) -> list[Frame]:
        """The frames one of whose ports is in ``ports`` (one item's agents)."""
        return [f for f in self.frames if f.ports[0] in ports or f.ports[1] in ports]
