"""A real Kamailio registrar + proxy for tests, started and stopped by its own pid.

Real mode must be tested against a real server, not a mock: the configuration shipped
here (``kamailio.cfg``, ``tls.cfg``) is written with this run's accounts, ports and
certificates, Kamailio runs in the foreground, and ``start()`` returns once UDP, TCP and
TLS really answer.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from pytest_sipflow.sip import LOOPBACK

from .process import end_group, kill_group, terminate, terminate_with_parent
from .readiness import NoFreePorts, options_probe, tcp_probe, pick_ports
from .records import Challenge, RequestLine, challenges_in, registrations_in, requests_in
from .tls import TlsFiles, generate_tls_files

TEMPLATES = Path(__file__).resolve().parent
_MODULE_DIRS = ("/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/*/kamailio/modules",
                "/usr/lib/kamailio/modules", "/usr/lib64/kamailio/modules",
                "/usr/local/lib*/kamailio/modules")
_NAME = re.compile(r"[A-Za-z0-9._+-]+")
_DEFINE = re.compile(r"SIPFLOW_[A-Z0-9_]+(=.+)?")
TRANSPORTS = ("udp", "tcp", "tls")


class KamailioError(RuntimeError):
    """Kamailio could not be started (the message carries the end of its log)."""


def _module_dir() -> Path | None:
    for pattern in _MODULE_DIRS:
        for found in sorted(glob.glob(pattern)):
            if Path(found, "tm.so").exists():
                return Path(found)
    return None


def available(tls: bool = True, binary: str = "kamailio") -> str | None:
    """``None`` when a server can run here, else the reason (for a clear skip)."""
    if shutil.which(binary) is None:
        return f"{binary} not installed (Debian: apt-get install kamailio kamailio-tls-modules)"
    if not tls:
        return None
    modules = _module_dir()
    if modules is not None and not (modules / "tls.so").exists():
        return f"Kamailio TLS module missing in {modules} (Debian: kamailio-tls-modules)"
    try:
        import trustme  # noqa: F401
    except ImportError:
        return "trustme not installed (pip install trustme): TLS test certificates need it"
    return None


class RelayControl(Protocol):
    """What the server needs of a media relay (``testing.rtpengine.RtpEngine`` has it)."""

    @property
    def ng_address(self) -> str: ...


_NG_SOCKET = re.compile(r"udp6?:[0-9A-Za-z.:\[\]-]+:\d{1,5}")


def _relay_socket(relay: RelayControl | str | None) -> str | None:
    if relay is None:
        return None
    address = relay if isinstance(relay, str) else relay.ng_address
    if not _NG_SOCKET.fullmatch(address):
        raise ValueError(f"rtpengine control address {address!r}: expected "
                         "udp:HOST:PORT (what RtpEngine.ng_address gives)")
    return address


def _check_value(kind: str, value: str) -> None:
    if kind == "password":
        if any(ch in value for ch in '"\\\r\n') or not value:
            raise ValueError("a test password must be non-empty, without quotes, "
                             "backslashes or line breaks")
    elif not _NAME.fullmatch(value):
        raise ValueError(f"invalid {kind} {value!r}: letters, digits and . _ + - only")


class KamailioServer:
    """One Kamailio process: registrar + proxy with digest auth on UDP, TCP and TLS.

    Ports default to this pytest-xdist worker's block (15060 + 10*N, TLS + 1); a pair in
    use is skipped. TLS certificates are generated (trustme) unless ``tls_cert`` and
    ``tls_key`` are given; ``tls=False`` runs without the TLS port. ``defines`` switch on
    the optional behaviours of ``kamailio.cfg`` (``-A NAME`` or ``-A NAME=VALUE``, listed
    at its top): more challenges, short nonces, SHA-256, 480, redirects, proxy mode.
    """

    def __init__(self, users: Mapping[str, str], *, domain: str = LOOPBACK,
                 udp_port: int | None = None, tcp_port: int | None = None,
                 tls_port: int | None = None, tls: bool = True,
                 tls_cert: Path | str | None = None, tls_key: Path | str | None = None,
                 tls_ca: Path | str | None = None, require_client_cert: bool = False,
                 workdir: Path | str | None = None, worker: int | None = None,
                 binary: str = "kamailio", start_timeout: float = 10.0,
                 stop_timeout: float = 5.0, rtpengine: "RelayControl | str | None" = None,
                 defines: Iterable[str] = ()) -> None:
        for user, password in users.items():
            _check_value("user", user)
            _check_value("password", password)
        _check_value("domain", domain)
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("give both tls_cert and tls_key, or neither (then they are generated)")
        self.defines = tuple(defines)
        for define in self.defines:
            if not _DEFINE.fullmatch(define):
                raise ValueError(f"invalid define {define!r}: SIPFLOW_NAME or SIPFLOW_NAME=VALUE "
                                 "(the switches are listed at the top of kamailio.cfg)")
        self.users = dict(users)
        self.rtpengine_sock = _relay_socket(rtpengine)
        self.domain = domain
        self.host = LOOPBACK
        self._wanted = (udp_port, tcp_port, tls_port)
        self.udp_port = self.tcp_port = self.tls_port = 0
        self.use_tls = tls
        self._instance = ""  # this start's token (``_write_config``)
        self._given_tls = (tls_cert, tls_key, tls_ca)
        self.require_client_cert = require_client_cert
        self.tls: TlsFiles | None = None
        self._workdir_arg = Path(workdir) if workdir is not None else None
        self.workdir: Path | None = None
        self.worker = worker
        self.binary = binary
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._final_log: str | None = None
        self.started_in: float | None = None   # seconds from spawn to all ports answering
        self.stopped_in: float | None = None   # seconds from SIGTERM to every process gone

    # ---- life cycle -------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None, "the server was never started"
        return self.workdir / "kamailio.log"

    def start(self) -> KamailioServer:
        """Write the configuration, start Kamailio, return once every port answers."""
        if self.running:
            return self
        reason = available(tls=self.use_tls and self._given_tls[0] is None, binary=self.binary)
        if reason:
            raise KamailioError(reason)
        if self._workdir_arg is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="sipflow-kamailio-")
            self.workdir = Path(self._tempdir.name)
        else:
            self.workdir = self._workdir_arg
            self.workdir.mkdir(parents=True, exist_ok=True)
        self._final_log = None
        self._prepare_tls()
        fixed = self._wanted[0] is not None
        attempts = 1 if fixed else 3
        for attempt in range(attempts):
            self._choose_ports()
            self._write_config()
            try:
                self._spawn_and_wait()
                return self
            except KamailioError as exc:
                # Someone took a port between our check and Kamailio's bind: next pair.
                if attempt + 1 == attempts or "Address already in use" not in str(exc):
                    self._cleanup_workdir()
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """SIGTERM to our own pid, SIGKILL after ``stop_timeout``; reap; no child left."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        began = time.monotonic()
        if terminate(proc, self.stop_timeout):
            # the main process ignored SIGTERM (seen once on a loaded machine): its
            # workers get no second grace period of their own
            kill_group(proc.pid)
        self._end_group(proc.pid)
        self.stopped_in = time.monotonic() - began
        self._save_log()
        self._cleanup_workdir()

    def restart(self) -> None:
        """Kill the server (SIGKILL: no goodbye) and start it again on the same ports.

        Registrations live in memory only, so every phone is unregistered afterwards, as
        after a crash of a real registrar. The log goes on in the same file.
        """
        proc, self._proc = self._proc, None
        if proc is None:
            raise KamailioError("restart() of a server that is not running")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(self.stop_timeout)
        self._end_group(proc.pid)
        self._spawn_and_wait()

    def __enter__(self) -> KamailioServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return (f"KamailioServer(domain={self.domain!r}, udp/tcp={self.udp_port}, "
                f"tls={self.tls_port or None}, {state})")

    # ---- what tests use ---------------------------------------------------------------

    def registrar(self, transport: str = "udp") -> str:
        """``"127.0.0.1:PORT"`` of the given transport (udp, tcp or tls)."""
        transport = transport.lower()
        ports = {"udp": self.udp_port, "tcp": self.tcp_port, "tls": self.tls_port}
        if transport not in ports:
            raise ValueError(f"transport must be one of {TRANSPORTS}, not {transport!r}")
        if not ports[transport]:
            raise KamailioError(f"no {transport.upper()} port: the server is not started"
                                + (" or runs without TLS" if transport == "tls" else ""))
        return f"{self.host}:{ports[transport]}"

    def log_text(self) -> str:
        """Everything Kamailio wrote so far (kept after ``stop()``)."""
        if self._final_log is not None:
            return self._final_log
        if self.workdir is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_lines(self) -> list[str]:
        return self.log_text().splitlines()

    def requests(self, method: str | None = None) -> list[RequestLine]:
        """Requests the server saw (xlog lines), oldest first; probes left out."""
        return requests_in(self.log_lines(), method)

    def challenges(self, method: str | None = None) -> list[Challenge]:
        """401/407 challenges the server sent (oldest first), of one method or all."""
        return challenges_in(self.log_lines(), method)

    def registrations(self) -> dict[str, int]:
        """AOR user -> contacts it had after its last accepted REGISTER (0: unregistered).

        Only users that ever registered appear; a test proves nothing was left behind with
        ``not any(server.registrations().values())``.
        """
        return registrations_in(self.log_lines())

    def wait_for_request(self, match: Callable[[RequestLine], bool],
                         timeout: float = 5.0) -> RequestLine:
        """The first logged request ``match`` accepts, waiting up to ``timeout`` s for it."""
        deadline = time.monotonic() + timeout
        while True:
            for req in self.requests():
                if match(req):
                    return req
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no matching request in Kamailio's log after {timeout} s")
            time.sleep(0.02)

    def environment(self) -> dict[str, str]:
        """Variables a scenario file can use as ``${NAME}`` to reach this server."""
        env = {
            "SIPFLOW_TEST_REGISTRAR_HOST": self.host,
            "SIPFLOW_TEST_DOMAIN": self.domain,
            "SIPFLOW_TEST_REGISTRAR": self.registrar("udp"),
            "SIPFLOW_TEST_UDP_PORT": str(self.udp_port),
            "SIPFLOW_TEST_TCP_PORT": str(self.tcp_port),
            "SIPFLOW_TEST_WRONG_PASSWORD": "not-the-password",
        }
        if self.tls is not None:
            env.update({"SIPFLOW_TEST_TLS_PORT": str(self.tls_port),
                        "SIPFLOW_TEST_TLS_CA": str(self.tls.ca),
                        "SIPFLOW_TEST_TLS_WRONG_CA": str(self.tls.wrong_ca),
                        "SIPFLOW_TEST_TLS_CLIENT_CERT": str(self.tls.client_cert),
                        "SIPFLOW_TEST_TLS_CLIENT_KEY": str(self.tls.client_key)})
        # by the transport's name, for parametrized files: ${SIPFLOW_TEST_PORT_${transport}}
        env.update({f"SIPFLOW_TEST_PORT_{t}": env[f"SIPFLOW_TEST_{t.upper()}_PORT"]
                    for t in ("udp", "tcp", "tls") if f"SIPFLOW_TEST_{t.upper()}_PORT" in env})
        env.update({f"PBX_PW_{user}": password for user, password in self.users.items()})
        return env

    # ---- internals --------------------------------------------------------------------

    def _prepare_tls(self) -> None:
        assert self.workdir is not None
        if not self.use_tls:
            self.tls = None
            return
        cert, key, ca = self._given_tls
        if cert is None:
            names = (LOOPBACK, "localhost") + (() if self.domain == LOOPBACK else (self.domain,))
            self.tls = generate_tls_files(self.workdir / "tls", names)
        else:
            cert_path, key_path = Path(cert), Path(key)  # type: ignore[arg-type]
            ca_path = Path(ca) if ca is not None else cert_path
            self.tls = TlsFiles(ca=ca_path, cert=cert_path, key=key_path,
                                client_cert=Path(), client_key=Path(), wrong_ca=Path())

    def _choose_ports(self) -> None:
        udp, tcp, tls = self._wanted
        if udp is None:
            try:
                udp, auto_tls = pick_ports(self.worker)
            except NoFreePorts as exc:
                raise KamailioError(str(exc)) from None
            tls = tls or auto_tls
        self.udp_port = udp
        self.tcp_port = tcp or udp
        self.tls_port = (tls or udp + 1) if self.use_tls else 0

    def _write_config(self) -> None:
        assert self.workdir is not None
        work = self.workdir
        shutil.copyfile(TEMPLATES / "kamailio.cfg", work / "kamailio.cfg")
        listen = [f"listen=udp:{self.host}:{self.udp_port}",
                  f"listen=tcp:{self.host}:{self.tcp_port}"]
        if self.tls is not None:
            listen.append(f"listen=tls:{self.host}:{self.tls_port}")
        else:
            listen.append("enable_tls=no")
        if self.domain != self.host:
            listen.append(f'alias="{self.domain}"')
        listen.append(f'#!define SIPFLOW_DOMAIN "{self.domain}"')
        # named in the reply to a readiness probe: this start's own server answers
        self._instance = uuid.uuid4().hex
        listen.append(f"#!substdef \"/SIPFLOW_INSTANCE_TOKEN/{self._instance}/\"")
        if self.rtpengine_sock is not None:
            listen += ["#!define WITH_RTPENGINE",
                       f'#!define RTPENGINE_SOCK "{self.rtpengine_sock}"']
        (work / "sipflow-listen.cfg").write_text(
            "# written by pytest_sipflow.testing.KamailioServer for this run\n"
            + "\n".join(listen) + "\n")
        users = "".join(f'\t$sht(users=>{user}) = "{password}";\n'
                        for user, password in sorted(self.users.items()))
        accounts = work / "sipflow-users.cfg"
        accounts.write_text("# the test accounts (user -> password), loaded at start-up\n"
                            + (f"event_route[htable:mod-init] {{\n{users}}}\n" if users
                               else "# none: an outbound proxy (SIPFLOW_NEXT_HOP) needs none\n"))
        accounts.chmod(0o600)
        tls_cfg = work / "sipflow-tls.cfg"
        if self.tls is not None:
            tls_cfg.write_text((TEMPLATES / "tls.cfg").read_text().format(
                certificate=self.tls.cert, private_key=self.tls.key, ca_list=self.tls.ca,
                verify_client="yes", require_client="yes" if self.require_client_cert else "no"))
        else:
            tls_cfg.write_text("# TLS disabled\n")

    def _spawn_and_wait(self) -> None:
        assert self.workdir is not None
        work = self.workdir
        cmd = [self.binary, "-f", str(work / "kamailio.cfg"), "-E", "-DD",
               "-P", str(work / "kamailio.pid")]
        for define in self.defines:
            cmd += ["-A", define]
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            # Its own session: a SIGKILLed main process cannot leave workers behind us.
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, cwd=work,
                                          start_new_session=True,
                                          preexec_fn=terminate_with_parent)
        deadline = began + self.start_timeout
        pending = {"udp", "tcp"} | ({"tls"} if self.tls is not None else set())
        while pending:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._proc = None
                raise KamailioError(f"kamailio exited with status {code} at start-up:\n"
                                    + self._tail())
            if time.monotonic() > deadline:
                self.stop()
                raise KamailioError(f"kamailio did not answer on {sorted(pending)} within "
                                    f"{self.start_timeout} s:\n" + self._tail())
            if "udp" in pending and options_probe(self.udp_port, 0.1, self._instance):
                pending.discard("udp")
            if "tcp" in pending and tcp_probe(self.tcp_port, 0.2):
                pending.discard("tcp")
            if "tls" in pending and tcp_probe(self.tls_port, 0.5, tls=True):
                pending.discard("tls")
            if pending:
                time.sleep(0.01)
        self.started_in = time.monotonic() - began

    def _end_group(self, pgid: int) -> None:
        """Wait (bounded) for the workers of our session to go; SIGKILL any straggler."""
        end_group(pgid, self.stop_timeout)

    def _tail(self, lines: int = 25) -> str:
        return "\n".join(self.log_lines()[-lines:]) or "(empty log)"

    def _save_log(self) -> None:
        if self.workdir is not None and self.log_path.exists():
            self._final_log = self.log_path.read_text(errors="replace")

    def _cleanup_workdir(self) -> None:
        if self._tempdir is not None:
            self._save_log()
            self._tempdir.cleanup()
            self._tempdir = None
