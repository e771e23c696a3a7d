"""Packets really seen on the loopback interface (``dumpcap``, Debian package ``tshark``).

A relay's own counters say what it received, not what it forwarded; a capture of ``lo``
is the independent witness: which UDP flows (source port → destination port) carried
how many packets while it ran. Needs capture rights (root, or dumpcap's capabilities).
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path

import dpkt

from .process import ForeignProcess, ForeignProcessError

Flow = tuple[int, int]  # (UDP source port, UDP destination port) on 127.0.0.1


class LoopbackCapture(ForeignProcess):
    """``dumpcap`` on ``lo`` with a BPF filter, written as classic pcap; ``flows()`` after
    ``stop()`` (or while running: what was flushed so far).

        with LoopbackCapture("udp portrange 47000-47099") as cap:
            ...  # the call
        cap.flows()[(47010, 40002)]  # packets the relay sent to port 40002
    """

    program = "dumpcap"

    def __init__(self, bpf_filter: str, workdir: str | Path | None = None,
                 start_timeout: float = 10.0, stop_timeout: float = 3.0) -> None:
        super().__init__(workdir, start_timeout, stop_timeout)
        self.bpf_filter = bpf_filter
        self._counted: Counter[Flow] | None = None

    @property
    def pcap_path(self) -> Path:
        assert self.workdir is not None, "not started"
        return self.workdir / "capture.pcap"

    def start(self) -> LoopbackCapture:
        """Start dumpcap; return once it says it is capturing (a refusal raises, with why)."""
        workdir = self._prepare_dir()
        self._counted = None
        self._spawn(["dumpcap", "-i", "lo", "-f", self.bpf_filter, "-P",
                     "-w", str(workdir / "capture.pcap")])
        self.wait_log(r"^Capturing on ", timeout=self.start_timeout)
        return self

    def _ask_to_quit(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGINT)  # dumpcap flushes and closes the file

    def stop(self) -> None:
        """Stop capturing and read the file once, before a temporary work dir goes."""
        running = self._proc is not None
        proc = self._proc
        if proc is not None and proc.poll() is None:
            self._ask_to_quit()
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                pass
        if running and self._counted is None:
            self._counted = self._read()
        super().stop()

    def flows(self) -> Counter[Flow]:
        """UDP packets per (source port, destination port) on 127.0.0.1."""
        return self._counted if self._counted is not None else self._read()

    def packets(self, src: int | None = None, dst: int | None = None) -> int:
        """Packets from port ``src`` and/or to port ``dst`` (None: any)."""
        return sum(n for (s, d), n in self.flows().items()
                   if (src is None or s == src) and (dst is None or d == dst))

    def _read(self) -> Counter[Flow]:
        counted: Counter[Flow] = Counter()
        try:
            with open(self.pcap_path, "rb") as handle:
                for _, frame in dpkt.pcap.Reader(handle):
                    ip = dpkt.ethernet.Ethernet(frame).data
                    if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.udp.UDP):
                        counted[(ip.data.sport, ip.data.dport)] += 1
        except (OSError, ValueError, dpkt.dpkt.NeedData) as exc:
            raise ForeignProcessError(f"dumpcap's file {self.pcap_path} is unreadable "
                                      f"({exc}):\n{self.tail()}") from exc
        return counted
