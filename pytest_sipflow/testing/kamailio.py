"""A real Kamailio registrar + proxy for tests, started and stopped by pid.

Real mode must be tested against a real server, not a mock: ``KamailioServer`` writes
the configuration shipped next to this module (``kamailio.cfg``, ``tls.cfg``) into a
work directory with the accounts, ports and certificates of this run, starts
``kamailio -f CFG -E -DD -P PIDFILE`` in the foreground (its log on stderr, kept in a
file), waits until UDP, TCP and TLS really answer, and stops it by its own pid.

    with KamailioServer({"1001": "secret1", "1002": "secret2"}) as server:
        server.registrar("udp")        # "127.0.0.1:15060"
        ...                            # phones register and call through it
        server.requests()              # one RequestLine per SIP request it saw
        server.registrations()         # {"1001": 0}: contacts left after the last REGISTER
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytest_sipflow.format.values import worker_index
from pytest_sipflow.sip import LOOPBACK

TEMPLATES = Path(__file__).resolve().parent
#: First UDP/TCP port of worker 0; worker N starts at +10*N, TLS is the port above.
#: Far from the agents' SIP ports (5060-9999) and below their RTP ports (20000+).
BASE_PORT = 15060
PORTS_PER_WORKER = 10
_FALLBACK_STEP = 500       # further candidates: +500, +1000, ... (still below 20000)
_FALLBACK_ROUNDS = 8
_MODULE_DIRS = ("/usr/lib/x86_64-linux-gnu/kamailio/modules", "/usr/lib/*/kamailio/modules",
                "/usr/lib/kamailio/modules", "/usr/lib64/kamailio/modules",
                "/usr/local/lib*/kamailio/modules")
_NAME = re.compile(r"[A-Za-z0-9._+-]+")
_REQUEST = re.compile(r"SIPFLOW-REQ method=(\S+) from=(\S*) ruri=(\S*) proto=(\S+) "
                      r"src=(\S+) callid=(.*)$")
_REGISTERED = re.compile(r"SIPFLOW-REG aor=(\S+) contacts=(\d+) proto=(\S+) callid=(.*)$")
TRANSPORTS = ("udp", "tcp", "tls")


class KamailioError(RuntimeError):
    """Kamailio could not be started (the message carries the end of its log)."""


@dataclass(frozen=True)
class RequestLine:
    """One request the server received, parsed from its xlog line (``None`` = absent)."""

    method: str
    from_user: str | None
    ruri_user: str | None
    proto: str          # udp, tcp or tls: the transport it arrived on
    source: str         # "ip:port" it came from
    call_id: str


@dataclass(frozen=True)
class TlsFiles:
    """Certificates made for one run (PEM paths): nothing secret is ever committed."""

    ca: Path            # the CA that signed the server and client certificates
    cert: Path          # the server's certificate chain (IP 127.0.0.1 and names)
    key: Path           # the server's private key
    client_cert: Path   # a client certificate from the same CA (mutual TLS)
    client_key: Path
    wrong_ca: Path      # an unrelated CA: verifying the server with it must fail


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


def fixed_accounts(workers: int = 10, per_worker: int = 9) -> dict[str, str]:
    """The suite's fixed test accounts: ``10<w><n>`` for worker w, slot n (1001 … 1099).

    Account ``10<w><n>`` has the password of ``100<n>`` so a scenario can write
    ``"dn": "10${SIPFLOW_WORKER}1", "password": "${PBX_PW_1001}"`` (no nested variables).
    A password comes from the environment (``PBX_PW_100<n>``) when set there.
    """
    accounts = {}
    for worker in range(workers):
        for slot in range(1, per_worker + 1):
            base = f"100{slot}"
            accounts[f"10{worker}{slot}"] = os.environ.get(f"PBX_PW_{base}", f"pw-{base}-sipflow")
    return accounts


def generate_tls_files(directory: Path, names: tuple[str, ...] = (LOOPBACK, "localhost")
                       ) -> TlsFiles:
    """Make a CA, a server and a client certificate, and an unrelated CA, with trustme."""
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca, wrong = trustme.CA(organization_name="sipflow test CA"), trustme.CA()
    server = ca.issue_cert(*dict.fromkeys(names))
    client = ca.issue_cert("sipflow-client.test")
    files = TlsFiles(ca=directory / "ca.pem", cert=directory / "server.pem",
                     key=directory / "server.key", client_cert=directory / "client.pem",
                     client_key=directory / "client.key", wrong_ca=directory / "wrong-ca.pem")
    ca.cert_pem.write_to_path(str(files.ca))
    wrong.cert_pem.write_to_path(str(files.wrong_ca))
    for cert, pem, key in ((server, files.cert, files.key),
                           (client, files.client_cert, files.client_key)):
        pem.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(str(key))
        key.chmod(0o600)
    return files


def _port_free(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def _ports_free(sip: int, tls: int) -> bool:
    return (_port_free(sip, socket.SOCK_DGRAM) and _port_free(sip, socket.SOCK_STREAM)
            and _port_free(tls, socket.SOCK_STREAM))


def pick_ports(worker: int | None = None) -> tuple[int, int]:
    """(UDP/TCP port, TLS port) free now, from this worker's block, else further up."""
    worker = worker_index() if worker is None else worker
    first = BASE_PORT + PORTS_PER_WORKER * worker
    for rnd in range(_FALLBACK_ROUNDS + 1):
        for offset in range(0, PORTS_PER_WORKER, 2):
            sip = first + rnd * _FALLBACK_STEP + offset
            if sip + 1 <= 65535 and _ports_free(sip, sip + 1):
                return sip, sip + 1
    raise KamailioError(f"no free port pair for Kamailio from {first} (worker {worker})")


def _options_probe(port: int, timeout: float) -> bool:
    """True when a SIP OPTIONS sent to the UDP port gets any answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        sock.settimeout(timeout)
        local = sock.getsockname()[1]
        tag = uuid.uuid4().hex[:12]
        msg = (f"OPTIONS sip:{LOOPBACK}:{port} SIP/2.0\r\n"
               f"Via: SIP/2.0/UDP {LOOPBACK}:{local};rport;branch=z9hG4bK{tag}\r\n"
               f"Max-Forwards: 70\r\nFrom: <sip:probe@{LOOPBACK}>;tag={tag}\r\n"
               f"To: <sip:{LOOPBACK}>\r\nCall-ID: sipflow-probe-{tag}\r\nCSeq: 1 OPTIONS\r\n"
               f"Content-Length: 0\r\n\r\n")
        try:
            sock.sendto(msg.encode(), (LOOPBACK, port))
            return sock.recv(4096).startswith(b"SIP/2.0 ")
        except OSError:
            return False


def _tcp_probe(port: int, timeout: float, tls: bool = False) -> bool:
    """True when the port accepts a connection (and, for TLS, completes a handshake)."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
            if tls:
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                with ctx.wrap_socket(sock):
                    pass
        return True
    except OSError:
        return False


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
    ``tls_key`` are given; ``tls=False`` runs without the TLS port.
    """

    def __init__(self, users: Mapping[str, str], *, domain: str = LOOPBACK,
                 udp_port: int | None = None, tcp_port: int | None = None,
                 tls_port: int | None = None, tls: bool = True,
                 tls_cert: Path | str | None = None, tls_key: Path | str | None = None,
                 tls_ca: Path | str | None = None, require_client_cert: bool = False,
                 workdir: Path | str | None = None, worker: int | None = None,
                 binary: str = "kamailio", start_timeout: float = 10.0,
                 stop_timeout: float = 5.0) -> None:
        for user, password in users.items():
            _check_value("user", user)
            _check_value("password", password)
        _check_value("domain", domain)
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("give both tls_cert and tls_key, or neither (then they are generated)")
        self.users = dict(users)
        self.domain = domain
        self.host = LOOPBACK
        self._wanted = (udp_port, tcp_port, tls_port)
        self.udp_port = self.tcp_port = self.tls_port = 0
        self.use_tls = tls
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
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(self.stop_timeout)
        self._end_group(proc.pid)
        self.stopped_in = time.monotonic() - began
        self._save_log()
        self._cleanup_workdir()

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
        found = []
        for line in self.log_lines():
            match = _REQUEST.search(line)
            if match is None or match.group(6).startswith("sipflow-probe-"):
                continue
            m, fu, ru, proto, src, cid = match.groups()
            req = RequestLine(m, None if fu == "<null>" else fu,
                              None if ru == "<null>" else ru, proto, src, cid)
            if method is None or req.method == method.upper():
                found.append(req)
        return found

    def registrations(self) -> dict[str, int]:
        """AOR user -> contacts it had after its last accepted REGISTER (0: unregistered).

        Only users that ever registered appear; a test proves nothing was left behind with
        ``not any(server.registrations().values())``.
        """
        left: dict[str, int] = {}
        for line in self.log_lines():
            match = _REGISTERED.search(line)
            if match is not None:
                left[match.group(1)] = int(match.group(2))
        return left

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
            udp, auto_tls = pick_ports(self.worker)
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
        (work / "sipflow-listen.cfg").write_text(
            "# written by pytest_sipflow.testing.KamailioServer for this run\n"
            + "\n".join(listen) + "\n")
        users = "".join(f'\t$sht(users=>{user}) = "{password}";\n'
                        for user, password in sorted(self.users.items()))
        accounts = work / "sipflow-users.cfg"
        accounts.write_text("# the test accounts (user -> password), loaded at start-up\n"
                            f"event_route[htable:mod-init] {{\n{users}}}\n")
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
        began = time.monotonic()
        with open(self.log_path, "wb") as log:
            # Its own session: a SIGKILLed main process cannot leave workers behind us.
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, cwd=work,
                                          start_new_session=True,
                                          preexec_fn=_terminate_with_parent)
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
            if "udp" in pending and _options_probe(self.udp_port, 0.1):
                pending.discard("udp")
            if "tcp" in pending and _tcp_probe(self.tcp_port, 0.2):
                pending.discard("tcp")
            if "tls" in pending and _tcp_probe(self.tls_port, 0.5, tls=True):
                pending.discard("tls")
            if pending:
                time.sleep(0.01)
        self.started_in = time.monotonic() - began

    def _end_group(self, pgid: int) -> None:
        """Wait (bounded) for the workers of our session to go; SIGKILL any straggler."""
        deadline = time.monotonic() + self.stop_timeout
        while group_pids(pgid):
            if time.monotonic() > deadline:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    return
                deadline = time.monotonic() + self.stop_timeout
            time.sleep(0.01)

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


def _terminate_with_parent() -> None:
    """In the child before exec: SIGTERM when the thread that started it dies (Linux).

    A test process killed outright (SIGKILL, xdist tearing a worker down) then leaves no
    Kamailio behind. Start servers from a thread that lives as long as they do.
    """
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def group_pids(pgid: int) -> list[int]:
    """Live processes of the group ``pgid`` (a test's proof that nothing was left)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


def kamailio_startup(users: Mapping[str, str] | None = None, **kwargs: Any
                     ) -> tuple[float, float]:
    """(start-to-listening, stop) seconds of one throwaway server, for benchmarks."""
    server = KamailioServer(users or {"1001": "pw-1001-sipflow"}, **kwargs)
    with server:
        pass
    assert server.started_in is not None and server.stopped_in is not None
    return server.started_in, server.stopped_in
