"""Routing the server decides, against a real Kamailio (issue 16, item 4): forking to two
devices of one account, 404/480 for a user without a contact, 302 redirects followed or
refused, an outbound proxy in front of the registrar, a server restart mid-run.

Each run is a pytester run; Kamailio's own log (``server.requests()``) shows what passed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import chain, command, event, instance, scenario
from pytest_sipflow.testing import KamailioServer, available
from test_real_auth import simple_call, started
from test_real_mode import (RECORDER, assert_unregistered, at, clean, events,  # noqa: F401
                            node_states, phone, recorder, user)

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KamailioServer]:
    """480 for a known user without a contact, 302 for ``302-USER``."""
    yield from started(tmp_path_factory, "kamailio-router", "SIPFLOW_480_UNREGISTERED",
                       "SIPFLOW_REDIRECT")


def forked(server: KamailioServer, loser_cancelled: bool = True) -> str:
    """Bob has two devices (one account, two registrations): Alice's call rings both, the
    desk phone answers, the mobile's ringing is CANCELled by the server."""
    nodes = [phone("alice", 1, **at(server)), phone("desk", 2, **at(server)),
             phone("mobile", 2, **at(server)),
             command("call", "MakeCall", "alice", callId="c", targetUri=user(2)),
             event("talk", "TIMEOUT", "alice", timeout=200),
             command("bye", "Release", "alice", callId="c"),
             event("desk-rings", "INCOMING", "desk", callId="c", timeout=5000),
             event("desk-waits", "TIMEOUT", "desk", timeout=300),
             command("desk-answers", "Answer", "desk", callId="c"),
             event("desk-gone", "DISCONNECTED", "desk", callId="c", cancelled=False,
                   timeout=5000),
             event("mobile-rings", "INCOMING", "mobile", callId="c", timeout=5000),
             event("mobile-stops", "DISCONNECTED", "mobile", callId="c",
                   cancelled=loser_cancelled, timeout=5000)]
    return scenario(nodes, chain("alice", "call", "talk", "bye")
                    + chain("desk", "desk-rings", "desk-waits", "desk-answers", "desk-gone")
                    + chain("mobile", "mobile-rings", "mobile-stops"),
                    name="forked", timeout=20000)


def test_forking_rings_both_devices_and_cancels_the_loser(
        router: KamailioServer, recorder: pytest.Pytester, clean: str) -> None:
    """Run twice in one session: as written (passes), and with ``"cancelled": false`` on
    the losing device (fails saying the peer's CANCEL ended the call)."""
    recorder.makefile(".sipflow.json", a_fork=forked(router),
                      b_wrong=forked(router, loser_cancelled=False))
    seen = len(router.requests())
    result = recorder.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "a_fork.sipflow.json .*", "b_wrong.sipflow.json F*",
        "*failing node: 'mobile-stops'*",
        "reason: call 'c' ended by the peer's CANCEL, but the node expects 'cancelled': false",
        "  expected: not cancelled", "  actual:   cancelled by the peer"])
    log = router.log_lines()
    assert any(f"SIPFLOW-REG aor={user(2)} contacts=2 " in line for line in log), \
        "both devices were registered at once"
    invites = [r for r in router.requests()[seen:] if r.method == "INVITE"]
    assert {r.from_user for r in invites} == {user(1)}, "one INVITE per run, forked by the server"
    assert_unregistered(router, user(1), user(2))


def dial(server: KamailioServer, target: str, expected: int | None, **call: Any) -> str:
    """Alice calls ``target``; Bob (registered) answers if the call reaches him."""
    nodes = [phone("alice", 1, **at(server)), phone("bob", 2, **at(server)),
             command("call", "MakeCall", "alice", callId="c", targetUri=target,
                     **({"expectedStatusCode": expected} if expected else {}), **call),
             command("bye", "Release", "alice", callId="c")]
    edges = chain("alice", "call", "bye")
    if expected is None:
        nodes += [event("in", "INCOMING", "bob", callId="c", timeout=5000),
                  command("answer", "Answer", "bob", callId="c"),
                  event("gone", "DISCONNECTED", "bob", callId="c", timeout=5000)]
        edges += chain("bob", "in", "answer", "gone")
    return scenario(nodes, edges, name=f"call {target}", timeout=20000)


@pytest.mark.parametrize("target, code", [("9", 480), ("nobody", 404)])
def test_a_user_without_a_contact_gets_480_an_unknown_one_404(
        router: KamailioServer, recorder: pytest.Pytester, clean: str, target: str,
        code: int) -> None:
    """Account 10<w>9 exists but never registered: 480; "nobody" is no account: 404."""
    target = user(9) if target == "9" else target
    recorder.makefile(".sipflow.json", unreachable=dial(router, target, code))
    recorder.runpytest().assert_outcomes(passed=1)   # exactly this code, not the other


def test_a_302_is_followed_to_its_contact(
        router: KamailioServer, recorder: pytest.Pytester, clean: str) -> None:
    recorder.makefile(".sipflow.json", moved=dial(router, f"302-{user(2)}", None))
    seen = len(router.requests())
    recorder.runpytest().assert_outcomes(passed=1)
    invites = [r.ruri_user for r in router.requests()[seen:] if r.method == "INVITE"]
    assert f"302-{user(2)}" in invites and user(2) in invites, invites
    assert any(f"SIPFLOW-REDIRECT ruri=302-{user(2)} " in line for line in router.log_lines())


def test_follow_redirects_false_ends_the_call_with_the_302(
        router: KamailioServer, recorder: pytest.Pytester, clean: str) -> None:
    recorder.makefile(".sipflow.json",
                      moved=dial(router, f"302-{user(2)}", 302, followRedirects=False))
    seen = len(router.requests())
    recorder.runpytest().assert_outcomes(passed=1)
    invites = [r.ruri_user for r in router.requests()[seen:] if r.method == "INVITE"]
    assert user(2) not in invites, "the Contact was not called"
    assert f"302-{user(2)}" in invites


BAD_KEYS = [("call", "data.followRedirects", {"followRedirects": "no"}),
            ("ev", "data.cancelled", {"cancelled": "yes"}),
            ("alice", "data.tlsKey", {"tlsCert": "client.pem"}),
            ("alice", "data.sips", {"sips": True, "pbxHost": "127.0.0.1",
                                    "pbxTransport": "TCP"})]


def test_bad_routing_keys_are_refused_at_collection(sipflow_pytester: pytest.Pytester) -> None:
    """One file per bad value, all in one run: each is a collection error naming it."""
    for index, (node, _, data) in enumerate(BAD_KEYS):
        nodes = [instance("alice", "100", **(data if node == "alice" else {})),
                 command("call", "MakeCall", "alice", targetUri="200",
                         **(data if node == "call" else {})),
                 event("ev", "DISCONNECTED", "alice", **(data if node == "ev" else {}))]
        sipflow_pytester.makefile(".sipflow.json", **{f"bad{index}": scenario(
            nodes, chain("alice", "call", "ev"))})
    result = sipflow_pytester.runpytest("--collect-only")
    result.assert_outcomes(errors=len(BAD_KEYS))
    for index, (node, field, _) in enumerate(BAD_KEYS):
        result.stdout.fnmatch_lines([f"bad{index}.sipflow.json*node {node!r}, field {field!r}*"])


@pytest.fixture(scope="module")
def proxy(router: KamailioServer, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[KamailioServer]:
    """A second Kamailio as a plain outbound proxy in front of ``router``."""
    with KamailioServer({}, tls=False, workdir=tmp_path_factory.mktemp("kamailio-proxy"),
                        defines=[f'SIPFLOW_NEXT_HOP="sip:{router.registrar("udp")}"']) as server:
        yield server


def test_an_outbound_proxy_distinct_from_the_registrar_carries_every_request(
        router: KamailioServer, proxy: KamailioServer, recorder: pytest.Pytester,
        clean: str) -> None:
    """Alice's outboundProxy is the proxy: her REGISTER, INVITE and BYE reach the proxy
    first and the registrar from the proxy's address; Bob, without one, goes direct."""
    recorder.makefile(".sipflow.json",
                      proxied=simple_call(router, outboundProxy=proxy.registrar("udp")))
    seen, seen_proxy = len(router.requests()), len(proxy.requests())
    recorder.runpytest().assert_outcomes(passed=1)
    via_proxy = {(r.method, r.from_user) for r in proxy.requests()[seen_proxy:]}
    assert {("REGISTER", user(1)), ("INVITE", user(1)), ("BYE", user(1))} <= via_proxy
    assert not any(u == user(2) for _, u in via_proxy), "Bob has no outbound proxy"
    at_registrar = {(r.method, r.from_user, r.source) for r in router.requests()[seen:]}
    hop = proxy.registrar("udp")
    assert {("REGISTER", user(1), hop), ("INVITE", user(1), hop)} <= at_registrar, at_registrar
    assert_unregistered(router, user(1), user(2))


def test_phones_register_again_after_the_server_restarts_and_calls_go_through(
        router: KamailioServer, recorder: pytest.Pytester, clean: str) -> None:
    """Once both phones registered (expires 10 s, the server's minimum), Kamailio is killed
    and started again on the same ports: its location table is empty. pjsua refreshes at
    expiry - 5 s, gets a new challenge, registers again, and the later call reaches Bob."""
    a = phone("alice", 1, registerIntervalSeconds=10, **at(router))
    b = phone("bob", 2, registerIntervalSeconds=10, **at(router))
    nodes = [a, b, event("a-wait", "TIMEOUT", "alice", timeout=6000),
             command("call", "MakeCall", "alice", callId="c", targetUri=user(2)),
             command("bye", "Release", "alice", callId="c"),
             event("in", "INCOMING", "bob", callId="c", timeout=12000),
             command("answer", "Answer", "bob", callId="c"),
             event("gone", "DISCONNECTED", "bob", callId="c", timeout=5000)]
    recorder.makefile(".sipflow.json", restart=scenario(
        nodes, chain("alice", "a-wait", "call", "bye") + chain("bob", "in", "answer", "gone"),
        name="restart", timeout=30000))
    # A pytest of its own: the restart must come from this (main) thread, since Kamailio
    # dies with the thread that started it (PR_SET_PDEATHSIG).
    run = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
                           cwd=recorder.path, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    restarted: list[int] = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and run.poll() is None:
            left = router.registrations()
            if left.get(user(1)) and left.get(user(2)):
                restarted.append(len(router.log_lines()))
                router.restart()
                break
            time.sleep(0.05)
        out, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 0, out
    assert restarted, "the phones never registered"
    after = router.log_lines()[restarted[0]:]
    again = [line for line in after if "SIPFLOW-REG aor=" in line and "contacts=1" in line]
    assert {user(1), user(2)} <= {line.split("aor=")[1].split()[0] for line in again}
    assert any("SIPFLOW-REQ method=INVITE" in line for line in after)
    assert_unregistered(router, user(1), user(2))


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KamailioServer]:
    """TLS with require_certificate = yes: a phone without a client certificate is refused."""
    yield from started(tmp_path_factory, "kamailio-mtls", tls=True, require_client_cert=True)


def test_mutual_tls_with_a_certificate_per_instance_and_a_sips_target(
        mtls: KamailioServer, recorder: pytest.Pytester, clean: str) -> None:
    """Alice and Bob present their own client certificate (tlsCert/tlsKey) to a server
    that requires one and register sips: Contacts; Alice calls Bob's sips: URI (a secure
    dialog: pjsip refuses a sip: Contact in it, so Bob's must be sips: too). Then, in the
    same run and on a pooled agent, Mallory without a certificate is refused."""
    assert mtls.tls is not None
    cert = {"tlsCert": str(mtls.tls.client_cert), "tlsKey": str(mtls.tls.client_key),
            "sips": True}
    nodes = [phone("alice", 1, **at(mtls, "TLS"), **cert), phone("bob", 2, **at(mtls, "TLS"),
                                                                 **cert),
             command("call", "MakeCall", "alice", callId="c",
                     targetUri=f"sips:{user(2)}@127.0.0.1"),
             command("bye", "Release", "alice", callId="c"),
             event("in", "INCOMING", "bob", callId="c", timeout=5000),
             command("answer", "Answer", "bob", callId="c"),
             event("gone", "DISCONNECTED", "bob", callId="c", timeout=5000)]
    recorder.makefile(".sipflow.json", a_mtls=scenario(
        nodes, chain("alice", "call", "bye") + chain("bob", "in", "answer", "gone"),
        name="mutual TLS", timeout=20000))
    recorder.makefile(".sipflow.json", b_nocert=scenario(
        [phone("mallory", 4, **at(mtls, "TLS")), event("wait", "TIMEOUT", "mallory", timeout=1)],
        chain("mallory", "wait"), name="no certificate"))
    seen = len(mtls.requests())
    result = recorder.runpytest("-p", "no:randomly", f"--sipflow-tls-ca={mtls.tls.ca}",
                                "--sipflow-register-timeout=3000")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "a_mtls.sipflow.json .*", "b_nocert.sipflow.json F*",
        f"reason: registration of instance 'mallory' as sip:{user(4)}@127.0.0.1 with "
        f"{mtls.registrar('tls')} over TLS failed: the server closed the TLS connection "
        "(without a client certificate of the instance)*",
        "  actual:   TLS connection closed by the server*"])
    run = mtls.requests()[seen:]
    assert {(r.method, r.proto) for r in run if r.from_user == user(1)} >= {
        ("REGISTER", "tls"), ("INVITE", "tls"), ("BYE", "tls")}
    assert_unregistered(mtls, user(1), user(2))
    assert user(4) not in mtls.registrations()
