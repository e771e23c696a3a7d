"""linphonec (Debian ``linphone-cli``) as a foreign phone: headless, 127.0.0.1 only.

Its config and HOME live in the work directory (liblinphone keeps a database under
``$HOME/.local/share``); commands go to its stdin, one per line. Its console output
(``linphonec.log``: "Receiving tone 1", "has been paused by") and its debug log with the
SIP messages (``linphone-debug.log``) are the proof of what the phone saw.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

from pytest_sipflow.testing.process import ForeignProcess, ForeignProcessError


class LinphonePhone(ForeignProcess):
    """One linphonec ``sip:<user>@127.0.0.1:<sip_port>`` (UDP and TCP on that port; RTP on
    ``rtp_port`` and the port above). With ``tls_ca`` it also listens for TLS on
    ``sip_port + 1`` and, as a TLS client, checks servers against that CA (the chain; not
    the name, which its TLS library cannot match against an IP address); ``tls_cert`` and
    ``tls_key`` (PEM files) are its own certificate.

        with LinphonePhone(sip_port=17010, rtp_port=46100) as phone:
            phone.dial("sip:100@127.0.0.1:5060")
            phone.wait_log(r"Call \\d+ with .* connected")
    """

    program = "linphonec"

    def __init__(self, sip_port: int, rtp_port: int, user: str = "phone",
                 auto_answer: bool = True, dtmf_info: bool = False,
                 tls_ca: str | Path | None = None, tls_cert: str | Path | None = None,
                 tls_key: str | Path | None = None, workdir: str | Path | None = None,
                 start_timeout: float = 10.0, stop_timeout: float = 3.0) -> None:
        super().__init__(workdir, start_timeout, stop_timeout)
        self.sip_port = sip_port
        self.rtp_port = rtp_port
        self.user = user
        self.auto_answer = auto_answer
        self.dtmf_info = dtmf_info
        self.tls_ca, self.tls_cert, self.tls_key = tls_ca, tls_cert, tls_key

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@127.0.0.1:{self.sip_port}"

    @property
    def debug_log_path(self) -> Path:
        assert self.workdir is not None, "not started"
        return self.workdir / "linphone-debug.log"

    def config_text(self) -> str:
        # ipv6_migration_done: otherwise liblinphone turns IPv6 on and puts the host's
        # global IPv6 address into the SDP. rtp bind_address: the SDP's c= line.
        tls = [] if self.tls_ca is None else [
            f"root_ca={self.tls_ca}", "verify_server_certs=1", "verify_server_cn=0"]
        if self.tls_cert and self.tls_key:
            tls += [f"client_cert_chain={self.tls_cert}", f"client_cert_key={self.tls_key}"]
        return "\n".join([
            "[sip]",
            f"sip_port={self.sip_port}",
            f"sip_tcp_port={self.sip_port}",
            f"sip_tls_port={0 if self.tls_ca is None else self.sip_port + 1}",
            *tls,
            "bind_address=127.0.0.1",
            "use_ipv6=0",
            "ipv6_migration_done=1",
            "auto_net_state_mon=0",
            f"use_info={1 if self.dtmf_info else 0}",
            "use_rfc2833=1",
            f'contact="{self.user}" <{self.uri}>',
            "[rtp]",
            "bind_address=127.0.0.1",
            f"audio_rtp_port={self.rtp_port}",
            f"video_rtp_port={self.rtp_port + 2}",
            f"text_rtp_port={self.rtp_port + 4}",
            "[sound]",
            "echocancellation=0",
            "[video]",
            "enabled=0",
            "",
        ])

    def start(self) -> LinphonePhone:
        """Write the config, start linphonec, wait until its TCP SIP port accepts."""
        workdir = self._prepare_dir()
        (workdir / "linphonerc").write_text(self.config_text())
        (workdir / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, HOME=str(workdir))
        env.pop("DISPLAY", None)
        argv = ["linphonec", "-c", str(workdir / "linphonerc"), "-d", "6",
                "-l", str(self.debug_log_path)] + (["-a"] if self.auto_answer else [])
        began = time.monotonic()
        # stdin stays open: at end of input linphonec spins at full CPU instead of quitting
        self._spawn(argv, env=env, stdin=subprocess.PIPE)
        self.wait_until(self._listening, f"SIP on 127.0.0.1:{self.sip_port}")
        self.started_in = time.monotonic() - began
        return self

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.sip_port), timeout=0.2):
                return True
        except OSError:
            return False

    def debug_log(self) -> str:
        """liblinphone's own log, SIP messages included."""
        try:
            return self.debug_log_path.read_text(errors="replace")
        except (OSError, AssertionError):
            return ""

    def received_requests(self, method: str) -> list[str]:
        """The SIP requests of ``method`` this phone received, as text (from its debug log)."""
        blocks = re.split(r"\n(?=\d{4}-\d\d-\d\d )", self.debug_log())
        return [b for b in blocks
                if re.match(r"\S+ \S+ belle-sip-message-channel \[\w+\]: received \[", b)
                and re.search(rf"^{method} sip:", b, re.MULTILINE)]

    # ------------------------------------------------------------------ commands

    def command(self, line: str) -> None:
        """One console command (linphonec answers on its console, i.e. the log)."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            raise ForeignProcessError(f"linphonec is not running:\n{self.tail()}")
        proc.stdin.write((line + "\n").encode())
        proc.stdin.flush()

    def dial(self, uri: str) -> None:
        self.command(f"call {uri}")

    def answer(self) -> None:
        self.command("answer")

    def hangup(self) -> None:
        self.command("terminate")

    def hold(self) -> None:
        self.command("pause")

    def resume(self) -> None:
        self.command("resume")

    def send_dtmf(self, digits: str) -> None:
        """A line of digits is sent as DTMF (RFC 2833, or SIP INFO with ``dtmf_info``)."""
        self.command(digits)

    def transfer(self, uri: str) -> None:
        """Blind transfer of the only call (REFER)."""
        self.command(f"transfer {uri}")

    def _ask_to_quit(self) -> None:
        self.command("quit")
