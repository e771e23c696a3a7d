"""A tiny RTP relay for media tests: two UDP sockets on 127.0.0.1 between two agents that
advertise the relay's ports in their SDP (the agents' test-only ``debug_sdp_port``).

``a_port`` is what A advertises (B sends there), ``b_port`` what B advertises. Each side's
real address is learnt from its first packet. ``drop_to_a`` / ``drop_to_b`` drop that
fraction of the packets towards A / B (random, seeded), 1.0 = the direction is dead.
"""

from __future__ import annotations

import random
import selectors
import socket
import threading


class RtpRelay:
    def __init__(self, drop_to_a: float = 0.0, drop_to_b: float = 0.0, seed: int = 7) -> None:
        self.drop = {"a": drop_to_a, "b": drop_to_b}
        self.rand = random.Random(seed)
        self.sock_a = self._bind()  # A's advertised port: packets from B arrive here
        self.sock_b = self._bind()  # B's advertised port: packets from A arrive here
        self.real: dict[str, tuple[str, int] | None] = {"a": None, "b": None}
        #: per destination: forwarded, dropped, and runs of consecutive drops
        self.count = {d: {"sent": 0, "dropped": 0, "runs": 0} for d in ("a", "b")}
        self._last_dropped = {"a": False, "b": False}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-rtp-relay", daemon=True)
        self._thread.start()

    @staticmethod
    def _bind() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        return sock

    @property
    def a_port(self) -> int:
        return int(self.sock_a.getsockname()[1])

    @property
    def b_port(self) -> int:
        return int(self.sock_b.getsockname()[1])

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.sock_a, selectors.EVENT_READ, "a")
        sel.register(self.sock_b, selectors.EVENT_READ, "b")
        while not self._stop.is_set():
            for key, _ in sel.select(0.05):
                try:
                    data, src = key.fileobj.recvfrom(4096)  # type: ignore[union-attr]
                except OSError:
                    continue
                # on A's port: a packet from B, towards A (sent from B's advertised port)
                towards, sender, out = (("a", "b", self.sock_b) if key.data == "a"
                                        else ("b", "a", self.sock_a))
                self.real[sender] = src
                dest = self.real[towards]
                if dest is None:
                    continue
                c = self.count[towards]
                if self.rand.random() < self.drop[towards]:
                    c["dropped"] += 1
                    c["runs"] += 0 if self._last_dropped[towards] else 1
                    self._last_dropped[towards] = True
                    continue
                self._last_dropped[towards] = False
                c["sent"] += 1
                out.sendto(data, dest)
        sel.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock_a.close()
        self.sock_b.close()

    def __enter__(self) -> "RtpRelay":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
