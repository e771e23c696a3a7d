"""rtpengine (Debian ``rtpengine-daemon``) as a media relay for tests: userspace only.

Started in the foreground on 127.0.0.1 with no kernel table, log on stderr into a file;
driven over its ng control protocol (bencoded dictionaries over UDP, each datagram
``<cookie> <bencode>``): ``ping``, ``offer``, ``answer``, ``delete``, ``query``.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bencodepy

from pytest_sipflow.testing.process import ForeignProcess, ForeignProcessError

_CODEC = bencodepy.Bencode(encoding="utf-8", encoding_fallback="value")


@dataclass(frozen=True)
class Leg:
    """One participant's side of a relayed audio stream (from an ng ``query``)."""

    tag: str
    relay_port: int      # the relay's RTP port this participant sends to
    endpoint_port: int   # the participant's own RTP port the relay sends to
    packets_in: int      # RTP packets the relay received from this participant


class RtpengineError(ForeignProcessError):
    """rtpengine answered ``result: error`` (the message carries its ``error-reason``)."""


class RtpEngine(ForeignProcess):
    """One rtpengine relaying on ``127.0.0.1:port_min-port_max``, controlled on
    ``127.0.0.1:ng_port``.

        with RtpEngine(ng_port=17030, port_min=47000, port_max=47099) as relay:
            relay.ping()
            sdp = relay.offer(call_id, from_tag, offer_sdp)["sdp"]
    """

    program = "rtpengine"

    def __init__(self, ng_port: int, port_min: int, port_max: int,
                 workdir: str | Path | None = None, start_timeout: float = 10.0,
                 stop_timeout: float = 3.0, log_level: int = 6) -> None:
        super().__init__(workdir, start_timeout, stop_timeout)
        self.ng_port = ng_port
        self.port_min = port_min
        self.port_max = port_max
        self.log_level = log_level

    @property
    def ng_address(self) -> str:
        """What a Kamailio ``rtpengine_sock`` names: ``udp:127.0.0.1:<ng_port>``."""
        return f"udp:127.0.0.1:{self.ng_port}"

    def start(self) -> RtpEngine:
        """Start rtpengine and wait until it answers an ng ``ping``."""
        workdir = self._prepare_dir()
        argv = ["rtpengine", "--config-file=none", "--foreground", "--log-stderr",
                "--interface=127.0.0.1", f"--listen-ng=127.0.0.1:{self.ng_port}",
                f"--port-min={self.port_min}", f"--port-max={self.port_max}",
                "--table=-1", f"--log-level={self.log_level}",
                f"--pidfile={workdir / 'rtpengine.pid'}"]
        began = time.monotonic()
        self._spawn(argv)
        self.wait_until(lambda: self._try_ping(), "answer to an ng ping")
        self.started_in = time.monotonic() - began
        return self

    def _try_ping(self) -> bool:
        try:
            return self.ping(timeout=0.2)
        except (OSError, RtpengineError, ForeignProcessError):
            return False

    # ------------------------------------------------------------------ ng protocol

    def request(self, command: str, timeout: float = 2.0, **params: Any) -> dict[str, Any]:
        """One ng request; its decoded reply. ``result: error`` raises RtpengineError.
        Parameter names use ``-`` on the wire (``call_id`` → ``call-id``)."""
        message: dict[str, Any] = {"command": command}
        message.update({key.replace("_", "-"): value for key, value in params.items()})
        cookie = uuid.uuid4().hex[:12]
        payload = cookie.encode() + b" " + _CODEC.encode(message)
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(payload, ("127.0.0.1", self.ng_port))
            while True:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    data = sock.recv(65535)
                except socket.timeout:
                    raise ForeignProcessError(f"rtpengine: no answer to ng {command!r} on "
                                              f"127.0.0.1:{self.ng_port} within {timeout} s")
                got_cookie, _, body = data.partition(b" ")
                if got_cookie.decode(errors="replace") == cookie:
                    break
        reply = dict(_CODEC.decode(body))
        if reply.get("result") == "error":
            raise RtpengineError(f"rtpengine {command}: {reply.get('error-reason', reply)}")
        return reply

    def ping(self, timeout: float = 2.0) -> bool:
        return self.request("ping", timeout=timeout).get("result") == "pong"

    def offer(self, call_id: str, from_tag: str, sdp: str, **params: Any) -> dict[str, Any]:
        """The reply to ``offer``: ``reply["sdp"]`` is the SDP rewritten to the relay."""
        return self.request("offer", call_id=call_id, from_tag=from_tag, sdp=sdp, **params)

    def answer(self, call_id: str, from_tag: str, to_tag: str, sdp: str,
               **params: Any) -> dict[str, Any]:
        return self.request("answer", call_id=call_id, from_tag=from_tag, to_tag=to_tag,
                            sdp=sdp, **params)

    def delete(self, call_id: str, from_tag: str, **params: Any) -> dict[str, Any]:
        return self.request("delete", call_id=call_id, from_tag=from_tag, **params)

    def query(self, call_id: str, **params: Any) -> dict[str, Any]:
        return self.request("query", call_id=call_id, **params)

    def legs(self, call_id: str) -> dict[str, Leg]:
        """Per participant (its SIP tag) of a call: the relay's port facing it, where it
        sends to it, and the RTP packets it received from it (counted even when a
        ``block media`` then drops them: a receive count, not a forward count)."""
        legs = {}
        for tag, monologue in self.query(call_id).get("tags", {}).items():
            for media in monologue.get("medias", []):
                rtp = [s for s in media.get("streams", []) if "RTP" in s.get("flags", [])]
                if media.get("type") == "audio" and rtp:
                    stream = rtp[0]
                    legs[tag] = Leg(tag, int(stream["local port"]),
                                    int(stream.get("endpoint", {}).get("port", 0)),
                                    int(stream.get("stats", {}).get("packets", 0)))
                    break
        return legs

    def _ask_to_quit(self) -> None:
        if self.pid is not None:
            os.kill(self.pid, signal.SIGTERM)  # no quit command: SIGTERM is its clean stop
