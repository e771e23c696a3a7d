"""Port plan: SIP ports as SIPFLOW allocates them (base, base+2, ...), RTP beside them.

Each pytest-xdist worker owns a disjoint block, so parallel workers never compete for a
port; inside a block a port held by someone else is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..sip import LOOPBACK

RTP_PORTS_PER_AGENT = 20  # 4 calls x (RTP + RTCP), with room for pjsua's own retries


@dataclass(frozen=True)
class PortPlan:
    sip_base: int = 5060
    sip_range: int = 400  # SIP ports in one worker's block (every second one is used)
    rtp_base: int = 20000
    worker: int = 0
    address: str = LOOPBACK  # local address of every agent's SIP and RTP

    @property
    def sip_first(self) -> int:
        return self.sip_base + self.worker * self.sip_range

    @property
    def sip_last(self) -> int:
        return self.sip_first + self.sip_range - 2

    @property
    def rtp_block(self) -> int:
        return (self.sip_range // 2) * RTP_PORTS_PER_AGENT

    @property
    def rtp_first(self) -> int:
        return self.rtp_base + self.worker * self.rtp_block

    def rtp_for(self, sip_port: int) -> int:
        """The first RTP port of the agent that owns ``sip_port``."""
        return self.rtp_first + (sip_port - self.sip_first) // 2 * RTP_PORTS_PER_AGENT

    def sip_ports(self, start: int | None = None) -> list[int]:
        """Every SIP port of the block, beginning at ``start`` and wrapping around."""
        ports = list(range(self.sip_first, self.sip_last + 1, 2))
        if start is not None and start in ports:
            i = ports.index(start)
            ports = ports[i:] + ports[:i]
        return ports

    def describe(self) -> str:
        rtp_last = self.rtp_first + self.rtp_block - 1
        return (f"SIP {self.address}:{self.sip_first}-{self.sip_last} (step 2), "
                f"RTP {self.rtp_first}-{rtp_last}")

    def check(self) -> None:
        if self.sip_range < 2:
            raise ValueError("the SIP port range must hold at least 2 ports")
        rtp_last = self.rtp_first + self.rtp_block - 1
        if self.sip_last > 65535 or rtp_last > 65535:
            raise ValueError(f"port block of worker {self.worker} ends past 65535 "
                             f"({self.describe()}); lower the base or the range")
        sip = range(self.sip_first, self.sip_last + 2)
        rtp = range(self.rtp_first, rtp_last + 1)
        if sip.start < rtp.stop and rtp.start < sip.stop:
            raise ValueError(f"SIP and RTP ports overlap ({self.describe()})")

