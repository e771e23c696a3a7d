"""baresip (Debian ``baresip-core``) as a foreign phone: headless, 127.0.0.1 only.

No audio hardware: a sine source (``ausine``) and no player. Commands go over the
``ctrl_tcp`` module (netstring JSON on TCP, one connection kept open); its log (verbose,
with the SIP trace) is the proof of what the phone saw.
"""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from typing import Any

from pytest_sipflow.testing.process import ForeignProcess, ForeignProcessError

MODULE_DIR = "/usr/lib/baresip/modules"


def _netstring(data: bytes) -> bytes:
    return str(len(data)).encode() + b":" + data + b","


class BaresipPhone(ForeignProcess):
    """One baresip user agent ``sip:<user>@127.0.0.1:<sip_port>``: UDP and TCP on that port,
    TLS always on ``sip_port + 1`` (with ``tls_cert``, a PEM of certificate and key, as its
    certificate), so ``ctrl_port`` must be neither.

        with BaresipPhone(sip_port=17000, ctrl_port=17002, rtp_ports=(46000, 46019)) as bs:
            bs.dial("sip:100@127.0.0.1:5060")
            bs.wait_log(r"Call established")
    """

    program = "baresip"

    def __init__(self, sip_port: int, ctrl_port: int, rtp_ports: tuple[int, int],
                 user: str = "phone", auto_answer: bool = True, tls_cert: str | Path | None = None,
                 workdir: str | Path | None = None, start_timeout: float = 10.0,
                 stop_timeout: float = 3.0) -> None:
        super().__init__(workdir, start_timeout, stop_timeout)
        self.sip_port = sip_port
        self.ctrl_port = ctrl_port
        self.rtp_ports = rtp_ports
        self.user = user
        self.auto_answer = auto_answer
        self.tls_cert = Path(tls_cert) if tls_cert else None
        self.events: list[dict[str, Any]] = []  # ctrl_tcp events, in arrival order
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._token = 0

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@127.0.0.1:{self.sip_port}"

    def config_text(self) -> str:
        lines = [
            "poll_method epoll",
            f"sip_listen 127.0.0.1:{self.sip_port}",
            "net_interface 127.0.0.1",
            "dns_server 127.0.0.1:53",
            f"rtp_ports {self.rtp_ports[0]}-{self.rtp_ports[1]}",
            "audio_source ausine,440",
            "ausrc_srate 48000",   # ausine generates 48 kHz stereo only
            "ausrc_channels 2",
            f"module_path {MODULE_DIR}",
            "module g711.so",
            "module ausine.so",
            "module_app account.so",
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
        ]
        if self.tls_cert is not None:
            lines.append(f"sip_certificate {self.tls_cert}")
        return "\n".join(lines) + "\n"

    def start(self) -> BaresipPhone:
        """Write the config, start baresip, wait for its ctrl_tcp to answer."""
        workdir = self._prepare_dir()
        (workdir / "config").write_text(self.config_text())
        mode = "auto" if self.auto_answer else "manual"
        (workdir / "accounts").write_text(f"<sip:{self.user}@127.0.0.1>;regint=0;"
                                          f"answermode={mode}\n")
        (workdir / "contacts").write_text("")
        began = time.monotonic()
        self._spawn(["baresip", "-f", str(workdir), "-v", "-s"])
        self.wait_log(r"baresip is ready\.", timeout=self.start_timeout)
        if "ctrl_tcp: TCP socket listening" not in self.log_text():
            raise ForeignProcessError(f"baresip: ctrl_tcp cannot listen on 127.0.0.1:"
                                      f"{self.ctrl_port}:\n{self.tail()}")
        self._sock = self.wait_until(self._connect, "ctrl_tcp connection")
        self.started_in = time.monotonic() - began
        return self

    def _connect(self) -> socket.socket | None:
        try:
            return socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=0.5)
        except OSError:
            return None

    # ------------------------------------------------------------------ commands

    def command(self, name: str, params: str = "", timeout: float = 5.0) -> str:
        """Run one menu command over ctrl_tcp; its text answer, or ForeignProcessError when
        baresip says it failed."""
        if self._sock is None:
            raise ForeignProcessError("baresip is not started")
        self._token += 1
        token = str(self._token)
        message = json.dumps({"command": name, "params": params, "token": token})
        self._sock.sendall(_netstring(message.encode()))
        deadline = time.monotonic() + timeout
        while True:
            for item in self._read_messages(deadline):
                if item.get("event"):
                    self.events.append(item)
                elif item.get("response") and item.get("token") == token:
                    data = str(item.get("data", ""))
                    if not item.get("ok", False):
                        raise ForeignProcessError(f"baresip /{name} {params}: failed: {data}")
                    return data
            if time.monotonic() > deadline:
                raise ForeignProcessError(f"baresip /{name}: no answer within {timeout} s; "
                                          f"log tail:\n{self.tail()}")

    def _read_messages(self, deadline: float) -> list[dict[str, Any]]:
        assert self._sock is not None
        self._sock.settimeout(max(0.01, min(0.2, deadline - time.monotonic())))
        try:
            chunk = self._sock.recv(65536)
        except socket.timeout:
            chunk = b""
        else:
            if not chunk:
                raise ForeignProcessError(f"baresip closed its ctrl_tcp connection:\n"
                                          f"{self.tail()}")
        self._buffer += chunk
        items = []
        while b":" in self._buffer:
            size_text, rest = self._buffer.split(b":", 1)
            size = int(size_text)
            if len(rest) < size + 1:
                break
            items.append(json.loads(rest[:size]))
            self._buffer = rest[size + 1:]
        return items

    def poll_events(self) -> list[dict[str, Any]]:
        """Read the events that arrived so far; all of them, as dicts (``type``, ``param``)."""
        if self._sock is not None:
            for item in self._read_messages(time.monotonic() + 0.01):
                if item.get("event"):
                    self.events.append(item)
        return self.events

    def received_requests(self, method: str) -> list[str]:
        """The SIP requests of ``method`` this phone received, as text (its SIP trace)."""
        ports = f"(?:{self.sip_port}|{self.sip_port + 1})"
        blocks = self.log_text().split("\x1b[36;1m#\n")
        return [b.split("\x1b[;m")[0] for b in blocks
                if re.match(rf"\w+ \S+ -> 127\.0\.0\.1:{ports}\n{method} sip:", b)]

    def dial(self, uri: str) -> str:
        return self.command("dial", uri)

    def answer(self) -> str:
        return self.command("accept")

    def hangup(self) -> str:
        return self.command("hangup")

    def hold(self) -> str:
        return self.command("hold")

    def resume(self) -> str:
        return self.command("resume")

    def send_dtmf(self, digits: str) -> str:
        """RFC 2833 telephone-events (baresip sends DTMF no other way)."""
        return self.command("sndcode", digits)

    def transfer(self, uri: str) -> str:
        """Blind transfer of the current call (REFER)."""
        return self.command("transfer", uri)

    def _ask_to_quit(self) -> None:
        if self._sock is not None:  # kept open until baresip is gone, or it may miss this
            self._sock.sendall(_netstring(json.dumps(
                {"command": "quit", "params": "", "token": "quit"}).encode()))

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
