"""The test registrar really works: SIPp (a foreign SIP stack) registers and calls through it.

These tests prove the component the real-mode suite relies on: digest auth on REGISTER
and INVITE, routing to registered users (404 otherwise), Record-Route, the transports
(UDP, TCP, TLS with the generated CA), and a clean start/stop by pid.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import textwrap
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_sipflow.testing import KamailioError, KamailioServer, available
from pytest_sipflow.testing.process import group_pids
from pytest_sipflow.testing.readiness import pick_ports
from support.kamailio import kamailio_startup

REPO = Path(__file__).resolve().parent.parent
SIPP_DIR = Path(__file__).resolve().parent / "sipp"
DOMAIN = "127.0.0.1"

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))
needs_sipp = pytest.mark.skipif(shutil.which("sipp") is None,
                                reason="sipp not installed (Debian: sip-tester)")


def free_port() -> int:
    """A port free for both UDP and TCP on loopback right now (SIPp binds it next)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
        return port
    raise RuntimeError("no free loopback port")


@dataclass
class Sipp:
    """One SIPp process: ends by itself (-m 1, -timeout with -timeout_error)."""

    returncode: int
    output: str
    port: int
    pid: int

    @property
    def call_id(self) -> str:
        """SIPp's Call-ID of its first call: ``1-<pid>@<local ip>``."""
        return f"1-{self.pid}@127.0.0.1"


def sipp_command(server: KamailioServer, scenario: str, *, port: int, transport: str = "u1",
                 user: str = "", password: str = "", extra: tuple[str, ...] = (),
                 timeout_s: int = 10, tmp: Path) -> list[str]:
    proto = {"u1": "udp", "t1": "tcp", "l1": "tls"}[transport]
    command = ["sipp", server.registrar(proto), "-sf", str(SIPP_DIR / scenario),
               "-t", transport, "-i", "127.0.0.1", "-p", str(port), "-m", "1",
               "-timeout", f"{timeout_s}s", "-timeout_error", "-nostdin",
               "-trace_err", "-error_file", str(tmp / f"sipp-{port}-errors.log"),
               "-set", "domain", DOMAIN]
    if user:
        command += ["-set", "user", user, "-au", user, "-ap", password]
    return command + list(extra)


def run_sipp(server: KamailioServer, scenario: str, tmp: Path, **kwargs: object) -> Sipp:
    port = free_port()
    cmd = sipp_command(server, scenario, port=port, tmp=tmp, **kwargs)  # type: ignore[arg-type]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = proc.communicate(timeout=30)
    return Sipp(proc.returncode, out.decode(errors="replace") + _errors(tmp, port), port,
                proc.pid)


def _errors(tmp: Path, port: int) -> str:
    path = tmp / f"sipp-{port}-errors.log"
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def register(server: KamailioServer, tmp: Path, user: str, *, transport: str = "u1",
             contact_port: int | None = None, password: str | None = None,
             scenario: str = "register.xml") -> Sipp:
    password = server.users[user] if password is None else password
    run = run_sipp(server, scenario, tmp, transport=transport, user=user, password=password,
                   extra=("-set", "contact_port", str(contact_port or 5), "-set",
                          "expires", "60"))
    return run


@pytest.fixture
def server(kamailio: KamailioServer) -> KamailioServer:
    return kamailio


# ---- registration --------------------------------------------------------------------

@needs_sipp
@pytest.mark.parametrize("transport, proto", [("u1", "udp"), ("t1", "tcp")])
def test_register_with_digest_auth(server: KamailioServer, tmp_path: Path,
                                   transport: str, proto: str) -> None:
    run = register(server, tmp_path, "1001", transport=transport)
    assert run.returncode == 0, run.output
    seen = [r for r in server.requests("REGISTER") if r.call_id == run.call_id]
    # challenged once, then accepted: both requests arrived on the transport asked for
    assert [(r.from_user, r.proto) for r in seen] == [("1001", proto)] * 2
    assert seen[0].source == f"127.0.0.1:{run.port}"


@needs_sipp
@pytest.mark.parametrize("transport", ["u1", "t1"])
def test_wrong_password_is_refused(server: KamailioServer, tmp_path: Path,
                                   transport: str) -> None:
    run = register(server, tmp_path, "1002", transport=transport, password="not-it",
                   scenario="register-refused.xml")
    assert run.returncode == 0, run.output


@needs_sipp
def test_right_password_fails_the_refused_scenario(server: KamailioServer,
                                                    tmp_path: Path) -> None:
    """The refusal scenario really tells a 200 from a 401 (so the test above proves it)."""
    run = register(server, tmp_path, "1002", scenario="register-refused.xml")
    assert run.returncode == 1, run.output


def _sip_exchange(conn: ssl.SSLSocket, request: str) -> tuple[int, dict[str, str]]:
    """Send one request on a stream, read one response: (status, lower-cased headers)."""
    conn.sendall(request.encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        assert chunk, "connection closed before a response"
        data += chunk
    return _parse_response(data)


def _parse_response(data: bytes) -> tuple[int, dict[str, str]]:
    lines = data.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


def _register_request(user: str, port: int, cseq: int, call_id: str, auth: str = "") -> str:
    return (f"REGISTER sip:{DOMAIN} SIP/2.0\r\n"
            f"Via: SIP/2.0/TLS 127.0.0.1:{port};rport;branch=z9hG4bK{call_id}{cseq}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag={call_id}\r\n"
            f"To: <sip:{user}@{DOMAIN}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
            f"Contact: <sip:{user}@127.0.0.1:{port};transport=tls>\r\nExpires: 60\r\n"
            f"{auth}Content-Length: 0\r\n\r\n")


def _digest(challenge: str, user: str, password: str, uri: str, method: str) -> str:
    """An RFC 2617 answer (MD5, qop=auth) to a WWW-Authenticate challenge."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    ha1 = hashlib.md5(f"{user}:{params['realm']}:{password}".encode()).hexdigest()
    ha2 = hashlib.md5(f"{method}:{uri}".encode()).hexdigest()
    cnonce, nc = "0a4f113b", "00000001"
    response = hashlib.md5(f"{ha1}:{params['nonce']}:{nc}:{cnonce}:auth:{ha2}".encode()
                           ).hexdigest()
    return (f'Authorization: Digest username="{user}", realm="{params["realm"]}", '
            f'nonce="{params["nonce"]}", uri="{uri}", response="{response}", '
            f'algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"\r\n')


def test_register_over_tls_with_digest_auth(server: KamailioServer) -> None:
    """Debian's SIPp has no TLS: a REGISTER written by hand on a verified TLS connection."""
    assert server.tls is not None
    ctx = ssl.create_default_context(cafile=str(server.tls.ca))
    host, port = server.registrar("tls").rsplit(":", 1)
    call_id = f"tls-reg-{os.getpid()}"
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        with ctx.wrap_socket(sock, server_hostname=host) as conn:
            local = conn.getsockname()[1]
            status, headers = _sip_exchange(conn, _register_request("1003", local, 1, call_id))
            assert status == 401
            auth = _digest(headers["www-authenticate"], "1003", server.users["1003"],
                           f"sip:{DOMAIN}", "REGISTER")
            status, headers = _sip_exchange(conn, _register_request("1003", local, 2, call_id,
                                                                    auth))
            assert status == 200
            assert "transport=tls" in headers["contact"]
    assert [r.proto for r in server.requests("REGISTER") if r.call_id == call_id] == ["tls"] * 2


# ---- calls through the proxy ----------------------------------------------------------

@needs_sipp
def test_call_through_the_proxy_with_proxy_auth(server: KamailioServer,
                                                tmp_path: Path) -> None:
    uas_port = free_port()
    uas = subprocess.Popen(
        ["sipp", "-sf", str(SIPP_DIR / "uas.xml"), "-t", "u1", "-i", "127.0.0.1",
         "-p", str(uas_port), "-m", "1", "-timeout", "15s", "-timeout_error", "-nostdin",
         "-trace_err", "-error_file", str(tmp_path / "uas-errors.log")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        reg = register(server, tmp_path, "1005", contact_port=uas_port)
        assert reg.returncode == 0, reg.output
        call = run_sipp(server, "uac-call.xml", tmp_path, user="1004",
                        password=server.users["1004"], extra=("-s", "1005"))
        uas_out, _ = uas.communicate(timeout=20)
    finally:
        if uas.poll() is None:
            uas.kill()
            uas.wait()
    assert call.returncode == 0, call.output
    assert uas.returncode == 0, uas_out.decode(errors="replace")
    methods = sorted(r.method for r in server.requests() if r.call_id == call.call_id)
    # INVITE challenged (407; the sl module absorbs the ACK of its own reply), INVITE with
    # credentials, then the ACK of the 200 and the BYE loose-routed (sorted: two workers
    # may write their lines in either order)
    assert methods == ["ACK", "BYE", "INVITE", "INVITE"]
    invite = [r for r in server.requests("INVITE") if r.call_id == call.call_id][-1]
    assert (invite.from_user, invite.ruri_user, invite.proto) == ("1004", "1005", "udp")


@needs_sipp
def test_call_to_an_unregistered_user_gets_404(server: KamailioServer, tmp_path: Path) -> None:
    call = run_sipp(server, "uac-call-404.xml", tmp_path, user="1006",
                    password=server.users["1006"], extra=("-s", "1009"))
    assert call.returncode == 0, call.output
    # 407, then 404: both answered by sl, whose ACKs it absorbs before the script
    assert [r.method for r in server.requests() if r.call_id == call.call_id] == [
        "INVITE", "INVITE"]


def _invite(user: str, target: str, port: int, auth: str = "") -> str:
    return (f"INVITE sip:{target}@{DOMAIN} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bK{uuid.uuid4().hex}\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag=t{port}\r\n"
            f"To: <sip:{target}@{DOMAIN}>\r\nCall-ID: inv-{port}@127.0.0.1\r\n"
            f"CSeq: 1 INVITE\r\nContact: <sip:{user}@127.0.0.1:{port}>\r\n"
            f"{auth}Content-Length: 0\r\n\r\n")


def test_invite_needs_proxy_auth_and_the_right_password(server: KamailioServer) -> None:
    """No credentials: 407 with the domain as realm; a wrong password: challenged again."""
    host, port = server.registrar("udp").rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        local = sock.getsockname()[1]

        def exchange(request: str) -> tuple[int, dict[str, str]]:
            sock.sendto(request.encode(), (host, int(port)))
            return _parse_response(sock.recv(65535))

        status, headers = exchange(_invite("1007", "1009", local))
        assert status == 407
        assert f'realm="{DOMAIN}"' in headers["proxy-authenticate"]
        auth = _digest(headers["proxy-authenticate"], "1007", "not-the-password",
                       f"sip:1009@{DOMAIN}", "INVITE").replace("Authorization",
                                                               "Proxy-Authorization")
        status, _ = exchange(_invite("1007", "1009", local, auth))
        assert status == 407


@needs_sipp
def test_message_out_of_dialog_reaches_the_registered_user(server: KamailioServer,
                                                           tmp_path: Path) -> None:
    """A MESSAGE with proxy auth is relayed to the contact SIPp registered for 1008."""
    host, port = server.registrar("udp").rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as phone, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for sock in (phone, sender):
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5)
        reg = register(server, tmp_path, "1008", contact_port=phone.getsockname()[1])
        assert reg.returncode == 0, reg.output
        local = sender.getsockname()[1]

        def message(auth: str = "") -> str:
            return (f"MESSAGE sip:1008@{DOMAIN} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{local};rport;branch=z9hG4bK{uuid.uuid4().hex}"
                    f"\r\nMax-Forwards: 70\r\nFrom: <sip:1007@{DOMAIN}>;tag=m{local}\r\n"
                    f"To: <sip:1008@{DOMAIN}>\r\nCall-ID: msg-{local}@127.0.0.1\r\n"
                    f"CSeq: 1 MESSAGE\r\n{auth}Content-Type: text/plain\r\n"
                    f"Content-Length: 5\r\n\r\nhello")

        sender.sendto(message().encode(), (host, int(port)))
        status, headers = _parse_response(sender.recv(65535))
        assert status == 407
        auth = _digest(headers["proxy-authenticate"], "1007", server.users["1007"],
                       f"sip:1008@{DOMAIN}", "MESSAGE").replace("Authorization",
                                                                "Proxy-Authorization")
        sender.sendto(message(auth).encode(), (host, int(port)))
        data, proxy = phone.recvfrom(65535)
        assert data.startswith(b"MESSAGE sip:1008@127.0.0.1:") and data.endswith(b"hello")
        assert b"Proxy-Authorization" not in data          # consumed by the proxy
        # answer it: the 200 goes back through the proxy to the sender
        via_block = b"\r\n".join(line for line in data.split(b"\r\n")
                                   if line.split(b":")[0].lower() in
                                   (b"via", b"from", b"to", b"call-id", b"cseq"))
        phone.sendto(b"SIP/2.0 200 OK\r\n" + via_block + b"\r\nContent-Length: 0\r\n\r\n",
                     proxy)
        status, _ = _parse_response(sender.recv(65535))
        assert status == 200


def test_the_docs_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    text = (REPO / "docs" / "testing-your-server.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    exec(compile(code, "testing-your-server.md", "exec"), {})
    out = capsys.readouterr().out
    assert "127.0.0.1:" in out and "ca.pem" in out


# ---- TLS ------------------------------------------------------------------------------

def _tls_connect(server: KamailioServer, ca: Path, cert: tuple[Path, Path] | None = None
                 ) -> dict[str, object]:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    host, port = server.registrar("tls").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        with ctx.wrap_socket(sock, server_hostname=host) as tls:
            peer = tls.getpeercert()
            assert peer is not None
            tls.sendall(b"\r\n\r\n")   # a keep-alive: the connection is usable
            return peer


def test_tls_handshake_verifies_with_the_generated_ca(server: KamailioServer) -> None:
    assert server.tls is not None
    peer = _tls_connect(server, server.tls.ca)
    assert ("IP Address", "127.0.0.1") in peer["subjectAltName"]  # type: ignore[operator]


def test_tls_verification_fails_with_the_wrong_ca(server: KamailioServer) -> None:
    assert server.tls is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        _tls_connect(server, server.tls.wrong_ca)


def test_mutual_tls_client_certificate(tmp_path: Path) -> None:
    """With require_client_cert the server takes our client certificate and refuses none."""
    with KamailioServer({"1001": "pw"}, require_client_cert=True, worker=7) as server:
        assert server.tls is not None
        _tls_connect(server, server.tls.ca, (server.tls.client_cert, server.tls.client_key))
        with pytest.raises((ssl.SSLError, ConnectionError)):
            ctx = ssl.create_default_context(cafile=str(server.tls.ca))
            host, port = server.registrar("tls").rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=5) as sock:
                with ctx.wrap_socket(sock, server_hostname=host) as tls:
                    tls.sendall(b"\r\n\r\n")
                    tls.recv(1)   # TLS 1.3: the refusal arrives after the handshake


def test_tls_answers_many_fresh_connections_eight_at_a_time(tmp_path: Path) -> None:
    # Bug: with two TCP workers, Kamailio 5.6 on OpenSSL 3 broke TLS reads ("unsupported
    # algorithm"), double-freed and crashed within a few hundred connections: the suite's
    # TLS tests failed at random when two runs shared the machine.
    with KamailioServer({"1001": "pw"}, workdir=tmp_path, worker=9) as server:
        assert server.tls is not None
        ctx = ssl.create_default_context(cafile=str(server.tls.ca))
        host, port = server.registrar("tls").rsplit(":", 1)

        def register(i: int) -> int | str:
            try:
                with socket.create_connection((host, int(port)), timeout=5) as sock:
                    # closed with a reset: 800 sockets in TIME_WAIT would hold ephemeral
                    # ports inside the fixed port areas of other tests for a minute
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    with ctx.wrap_socket(sock, server_hostname=host) as conn:
                        local = conn.getsockname()[1]
                        return _sip_exchange(conn, _register_request(
                            "1001", local, 1, f"tls-many-{os.getpid()}-{i}"))[0]
            except (OSError, ValueError, AssertionError) as exc:  # closed, reset, no answer
                return f"{type(exc).__name__}: {exc}"

        with ThreadPoolExecutor(8, thread_name_prefix="tls-many") as pool:
            answers = list(pool.map(register, range(800)))
        assert [a for a in answers if a != 401] == []
        assert "protocol level error" not in (tmp_path / "kamailio.log").read_text()


# ---- the server's own life cycle -------------------------------------------------------

def test_a_server_whose_port_another_holds_never_counts_as_started(tmp_path: Path) -> None:
    # Bug: two suites at once picked the same free port pair; the loser's start-up probes
    # were answered by the winner's Kamailio, so its tests talked to a server with another
    # CA ("certificate verification failed") and other accounts.
    with KamailioServer({"1001": "pw"}, tls=False, workdir=tmp_path / "a", worker=10) as first:
        second = KamailioServer({"1001": "pw"}, tls=False, workdir=tmp_path / "b",
                                udp_port=first.udp_port, start_timeout=5)
        with pytest.raises(KamailioError, match="exited|did not answer"):
            second.start()
        assert not second.running
        assert first.registrar("udp") == f"127.0.0.1:{first.udp_port}"


def test_a_main_process_that_ignores_sigterm_takes_its_workers_with_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Seen once with two suites at once: Kamailio's main did not end on SIGTERM, was
    # killed after stop_timeout, and then its workers were given a second stop_timeout.
    from pytest_sipflow.testing import kamailio as kamailio_module

    killed: list[int] = []
    real = kamailio_module.kill_group
    monkeypatch.setattr(kamailio_module, "kill_group",
                        lambda pgid: (killed.append(pgid), real(pgid)))
    server = KamailioServer({"1001": "pw"}, tls=False, workdir=tmp_path, worker=11,
                            stop_timeout=1.0)
    server.start()
    pid = server.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # a main that does not act on SIGTERM
    server.stop()
    assert killed == [pid]
    assert group_pids(pid) == []


def test_start_stop_leaves_no_process(tmp_path: Path) -> None:
    server = KamailioServer({"1001": "pw"}, domain="sipflow.test", tls=False,
                            workdir=tmp_path, worker=8)
    with server:
        pid = server.pid
        assert pid is not None and len(group_pids(pid)) > 1   # main + workers
        assert server.registrar("udp") == f"127.0.0.1:{server.udp_port}"
        with pytest.raises(KamailioError, match="without TLS"):
            server.registrar("tls")
    assert group_pids(pid) == []
    assert not server.running
    server.stop()   # idempotent
    assert "Thank you for flying kamailio" in server.log_text()
    assert (tmp_path / "sipflow-listen.cfg").read_text().count('alias="sipflow.test"') == 1


def test_a_port_in_use_is_skipped() -> None:
    sip, tls = pick_ports(worker=9)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", sip))
        with KamailioServer({"1001": "pw"}, tls=False, worker=9) as server:
            assert server.udp_port not in (sip, 0)


def test_start_failure_shows_the_log_tail() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", port))
        server = KamailioServer({"1001": "pw"}, udp_port=port, tls=False)
        with pytest.raises(KamailioError, match="(?s)exited with status.*bind"):
            server.start()
    assert not server.running


def test_bad_values_are_refused_before_start() -> None:
    with pytest.raises(ValueError, match="password"):
        KamailioServer({"1001": 'a"b'})
    with pytest.raises(ValueError, match="user"):
        KamailioServer({"10 01": "pw"})
    with pytest.raises(ValueError, match="tls_cert"):
        KamailioServer({"1001": "pw"}, tls_cert="/x.pem")


def test_available_names_what_is_missing() -> None:
    assert available() is None
    assert "not installed" in str(available(binary="no-such-kamailio"))


def test_environment_for_scenario_files(server: KamailioServer) -> None:
    env = server.environment()
    assert env["SIPFLOW_TEST_UDP_PORT"] == str(server.udp_port)
    assert env["SIPFLOW_TEST_TLS_PORT"] == str(server.tls_port)
    assert Path(env["SIPFLOW_TEST_TLS_CA"]).is_file()
    # a worker's variant account shares the password of slot n of worker 0
    assert env["PBX_PW_1011"] == env["PBX_PW_1001"] == server.users["1001"]


def test_startup_timing_helper() -> None:
    started, stopped = kamailio_startup(tls=False, worker=6)
    assert 0 < started < 10 and 0 < stopped < 10


# ---- the conftest that serves scenarios/real-mode ---------------------------------------

def test_real_mode_conftest_starts_one_server_per_xdist_worker(
        pytester: pytest.Pytester) -> None:
    """Loaded late (at collection), under -n 2: each worker gets its own server and ports."""
    sub = pytester.mkdir("real-mode")
    shutil.copy(REPO / "scenarios" / "real-mode" / "conftest.py", sub / "conftest.py")
    (sub / "test_env.py").write_text(textwrap.dedent("""
        import os, socket
        def test_env(worker_id):
            port = int(os.environ["SIPFLOW_TEST_UDP_PORT"])
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass   # the TCP port of this worker's server answers
            with open(f"ports-{worker_id}.txt", "w") as out:
                out.write(f"{port} {os.environ['SIPFLOW_TEST_KAMAILIO_PID']}")
            assert os.environ["PBX_PW_1001"]
        """))
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "each", "-p", "no:cacheprovider",
                                           timeout=120)
    result.assert_outcomes(passed=2)
    files = list(pytester.path.glob("ports-*.txt"))
    ports, pids = zip(*(f.read_text().split() for f in files))
    assert len(files) == 2 and len(set(ports)) == 2
    for pid in pids:
        assert group_pids(int(pid)) == []          # pytest_unconfigure stopped it
