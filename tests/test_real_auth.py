"""Every digest case against a real Kamailio (issue 16, item 3): 407 on INVITE, challenged
in-dialog requests, stale nonces, SHA-256, a realm that does not match, a server restart.

The servers here run the bundled ``kamailio.cfg`` with opt-in switches (``defines``);
their ``SIPFLOW-AUTH`` log lines (``server.challenges()``) prove each challenge happened.
"""

from __future__ import annotations

import socket
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import chain, command, event, scenario
from pytest_sipflow.testing import KamailioServer, available
from support.kamailio import fixed_accounts
from test_real_mode import (RECORDER, assert_unregistered, at, clean, events,  # noqa: F401
                            node_states, phone, recorder, user)

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

STRICT = ("SIPFLOW_CHALLENGE_IN_DIALOG", "SIPFLOW_NONCE_EXPIRE=3")


def started(tmp_path_factory: pytest.TempPathFactory, name: str, *defines: str,
            tls: bool = False, **kwargs: Any) -> Iterator[KamailioServer]:
    """A server with the suite's accounts and these switches, its variables exported."""
    server = KamailioServer(fixed_accounts(), tls=tls, defines=defines,
                            workdir=tmp_path_factory.mktemp(name), **kwargs)
    with server, pytest.MonkeyPatch.context() as env:
        for key, value in server.environment().items():
            env.setenv(key, value)
        yield server


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KamailioServer]:
    """Challenges in-dialog requests too; nonces expire after 3 s."""
    yield from started(tmp_path_factory, "kamailio-strict", *STRICT)


def first_challenge(server: KamailioServer) -> str:
    """The WWW-Authenticate header the server answers a bare REGISTER with."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(3)
        tag, port = uuid.uuid4().hex[:10], sock.getsockname()[1]
        sock.sendto((f"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};"
                     f"rport;branch=z9hG4bK{tag}\r\nMax-Forwards: 70\r\nFrom: <sip:{user(1)}@"
                     f"127.0.0.1>;tag={tag}\r\nTo: <sip:{user(1)}@127.0.0.1>\r\nCall-ID: "
                     f"probe-{tag}\r\nCSeq: 1 REGISTER\r\nContact: <sip:x@127.0.0.1:{port}>\r\n"
                     "Content-Length: 0\r\n\r\n").encode(), ("127.0.0.1", server.udp_port))
        reply = sock.recv(4096).decode()
    (header,) = [line for line in reply.splitlines() if line.startswith("WWW-Authenticate")]
    return header


def per_method(server: KamailioServer, since: int, **match: Any) -> Counter[str]:
    """Challenges sent since the ``since``-th one, counted by (method, in-dialog)."""
    found = server.challenges()[since:]
    return Counter(f"{c.code} {c.method}{' in-dialog' if c.in_dialog else ''}"
                   for c in found if all(getattr(c, k) == v for k, v in match.items()))


def in_dialog_flow(server: KamailioServer, **a_keys: Any) -> str:
    """Alice calls Bob (INVITE), holds and retrieves him (two re-INVITEs), sends DTMF by
    INFO, a MESSAGE, then blind-transfers him to Carol (REFER) and hangs up (BYE); Carol
    hangs up on Bob (BYE from the callee side)."""
    alice = phone("alice", 1, **{**at(server), **a_keys})
    bob, carol = phone("bob", 2, **at(server)), phone("carol", 3, **at(server))
    nodes = [alice, bob, carol,
             command("a-call", "MakeCall", "alice", callId="c", targetUri=user(2)),
             command("a-hold", "Hold", "alice", callId="c"),
             command("a-retrieve", "Retrieve", "alice", callId="c"),
             command("a-info", "SendDTMF", "alice", callId="c", digits="4", method="info"),
             command("a-message", "SendMessage", "alice", targetUri=user(2), body="hello"),
             command("a-refer", "BlindTransfer", "alice", callId="c", targetUri=user(3)),
             event("a-notify", "NOTIFY", "alice", callId="c", statusCode=200, timeout=5000),
             command("a-bye", "Release", "alice", callId="c"),
             event("b-in", "INCOMING", "bob", callId="c", timeout=5000),
             command("b-answer", "Answer", "bob", callId="c"),
             event("b-held", "HELD", "bob", callId="c", timeout=5000),
             event("b-back", "RETRIEVED", "bob", callId="c", timeout=5000),
             event("b-dtmf", "DTMFReceived", "bob", callId="c", expectedDigit="4",
                   timeout=5000),
             event("b-msg", "MESSAGE", "bob", expectedBody="hello", timeout=5000),
             event("b-moved", "TRANSFERRED", "bob", callId="c", timeout=5000),
             event("b-gone", "DISCONNECTED", "bob", callId="c", timeout=5000),
             event("c-in", "INCOMING", "carol", callId="c", timeout=5000),
             command("c-answer", "Answer", "carol", callId="c"),
             event("c-talk", "TIMEOUT", "carol", timeout=300),
             command("c-bye", "Release", "carol", callId="c")]
    return scenario(nodes, chain("alice", "a-call", "a-hold", "a-retrieve", "a-info",
                                 "a-message", "a-refer", "a-notify", "a-bye")
                    + chain("bob", "b-in", "b-answer", "b-held", "b-back", "b-dtmf", "b-msg",
                            "b-moved", "b-gone")
                    + chain("carol", "c-in", "c-answer", "c-talk", "c-bye"),
                    name="challenged in dialog", timeout=30000)


def test_every_request_is_challenged_and_the_flow_completes(
        strict: KamailioServer, recorder: pytest.Pytester, clean: str) -> None:
    """401 on each REGISTER, 407 on the INVITEs, the re-INVITEs, INFO, MESSAGE, REFER
    and both BYEs: the flow completes, and the server's log holds every challenge."""
    recorder.makefile(".sipflow.json", flow=in_dialog_flow(strict))
    since = len(strict.challenges())
    recorder.runpytest().assert_outcomes(passed=1)
    counted = per_method(strict, since)
    print(dict(counted))
    assert counted["401 REGISTER"] >= 3
    assert counted["407 INVITE"] >= 2                 # alice -> bob, bob -> carol
    assert counted["407 INVITE in-dialog"] >= 2       # hold, retrieve
    for method in ("INFO", "REFER", "BYE"):
        assert counted[f"407 {method} in-dialog"] >= 1, (method, counted)
    assert counted["407 MESSAGE"] >= 1
    assert_unregistered(strict, user(1), user(2), user(3))


@pytest.fixture(scope="module")
def stale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KamailioServer]:
    """Takes the first right answer per Call-ID, method and To tag as stale."""
    yield from started(tmp_path_factory, "kamailio-stale", "SIPFLOW_STALE_ONCE",
                       "SIPFLOW_CHALLENGE_IN_DIALOG")


def test_a_stale_nonce_is_answered_again_without_failing(
        stale: KamailioServer, recorder: pytest.Pytester, clean: str) -> None:
    """Each REGISTER Call-ID, each call and each in-dialog method gets one stale=true
    re-challenge after a right answer: pjsua answers it with the new nonce."""
    recorder.makefile(".sipflow.json", flow=in_dialog_flow(stale))
    since = len(stale.challenges())
    recorder.runpytest().assert_outcomes(passed=1)
    counted = per_method(stale, since, stale=True)
    print(dict(counted))
    assert counted["401 REGISTER"] == 3               # one per phone (one Call-ID each)
    assert counted["407 INVITE"] == 2
    for method in ("INVITE", "INFO", "REFER", "BYE"):
        assert counted[f"407 {method} in-dialog"] >= 1, (method, counted)
    assert_unregistered(stale, user(1), user(2), user(3))


def simple_call(server: KamailioServer, **a_keys: Any) -> str:
    """Alice (``a_keys`` added) calls Bob through ``server``, Bob answers, Alice hangs up."""
    alice = phone("alice", 1, **{**at(server), **a_keys})
    nodes = [alice, phone("bob", 2, **at(server)),
             command("call", "MakeCall", "alice", callId="c", targetUri=user(2)),
             command("bye", "Release", "alice", callId="c"),
             event("in", "INCOMING", "bob", callId="c", timeout=5000),
             command("answer", "Answer", "bob", callId="c"),
             event("gone", "DISCONNECTED", "bob", callId="c", timeout=5000)]
    return scenario(nodes, chain("alice", "call", "bye") + chain("bob", "in", "answer", "gone"),
                    name="one call", timeout=20000)


@pytest.fixture(scope="module")
def sha256(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KamailioServer]:
    yield from started(tmp_path_factory, "kamailio-sha256", "SIPFLOW_SHA256")


def test_sha256_digest_registers_and_calls(
        sha256: KamailioServer, strict: KamailioServer, recorder: pytest.Pytester,
        clean: str) -> None:
    """pjsip 2.15 answers algorithm=SHA-256 challenges (RFC 8760) with a SHA-256 digest:
    the server checks the answer with SHA-256 only, so an MD5 answer would be refused."""
    recorder.makefile(".sipflow.json", sha=simple_call(sha256))
    since = len(sha256.challenges())
    result = recorder.runpytest("-rA", "--sipflow-full-trace")
    result.assert_outcomes(passed=1)
    counted = per_method(sha256, since)
    assert counted["401 REGISTER"] >= 2 and counted["407 INVITE"] == 1, counted
    assert 'algorithm=SHA-256' in first_challenge(sha256)      # what pjsua had to answer
    assert 'algorithm' not in first_challenge(strict)            # the MD5 default
    assert_unregistered(sha256, user(1), user(2))


def test_a_realm_the_server_does_not_use_fails_registration_naming_it(
        strict: KamailioServer, recorder: pytest.Pytester, clean: str) -> None:
    recorder.makefile(".sipflow.json", realm=simple_call(strict, realm="pbx.example.com"))
    result = recorder.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        f"reason: registration of instance 'alice' as sip:{user(1)}@127.0.0.1 with "
        f"{strict.registrar('udp')} over UDP failed: the server challenged for realm "
        "'127.0.0.1', but instance 'alice' has credentials for realm 'pbx.example.com' only*",
        "  actual:   401 Unauthorized, realm '127.0.0.1'"])
