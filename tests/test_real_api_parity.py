"""The Python API against a real Kamailio, as the scenario keys do it: an instance's own
client certificate and sips: URIs (``sip_instance(tls_cert=, tls_key=, sips=)``) and
``ua.call(..., follow_redirects=False)``. Pytester runs: the TLS CA is a run option."""

from __future__ import annotations

import pytest

from pytest_sipflow.api.ua import SipActionError
from pytest_sipflow.testing import KamailioServer, available
from test_real_mode import clean, recorder, user  # noqa: F401
from test_real_routing import mtls, router  # noqa: F401

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

MTLS_TESTS = '''
import os
import pytest
from pytest_sipflow.api.ua import SipActionError

REGISTRAR = "{registrar}"
CERT = dict(tls_cert=r"{cert}", tls_key=r"{key}")

def phone(sip_instance, name, dn, **keys):
    return sip_instance(name, dn, registrar=REGISTRAR, transport="tls",
                        password=os.environ["PBX_PW_" + dn], **keys)

def test_a_own_certificates_register_and_call_a_sips_target(sip_instance):
    alice = phone(sip_instance, "alice", "{alice}", sips=True, **CERT)
    bob = phone(sip_instance, "bob", "{bob}", sips=True, **CERT)
    assert alice.uri.startswith("sips:") and bob.uri.startswith("sips:")
    out = alice.call("sips:{bob}@127.0.0.1")
    inc = bob.wait_incoming()
    inc.answer()
    out.wait_answered()
    out.release()
    inc.wait_disconnected()

def test_b_without_a_certificate_is_refused_on_a_pooled_agent(sip_instance):
    with pytest.raises(SipActionError) as err:
        phone(sip_instance, "mallory", "{mallory}")
    assert "the server closed the TLS connection (without a client certificate" in str(err.value)
'''

REDIRECT_TESTS = '''
import os
import pytest
from pytest_sipflow.api.ua import SipActionError

def phone(sip_instance, name, dn):
    return sip_instance(name, dn, registrar="{registrar}", password=os.environ["PBX_PW_" + dn])

def test_follow_redirects_false_ends_the_call_with_the_302(sip_instance):
    alice, bob = phone(sip_instance, "alice", "{alice}"), phone(sip_instance, "bob", "{bob}")
    out = alice.call("302-{bob}", follow_redirects=False)
    with pytest.raises(SipActionError, match="302"):
        out.wait_answered()
    assert not bob.calls

def test_a_302_is_followed_by_default(sip_instance):
    alice, bob = phone(sip_instance, "alice", "{alice}"), phone(sip_instance, "bob", "{bob}")
    out = alice.call("302-{bob}")
    inc = bob.wait_incoming()
    inc.answer()
    out.wait_answered()
    out.release()
    inc.wait_disconnected()
'''


def test_sip_instance_with_its_own_client_certificate_through_mutual_tls(
        mtls: KamailioServer, recorder: pytest.Pytester, clean: str) -> None:
    """Alice and Bob present their own certificate and register sips: Contacts; Alice
    calls Bob's sips: URI. Then, in the same run, Mallory without a certificate is refused:
    had Alice's agent gone back to the pool with her certificate, Mallory would pass."""
    assert mtls.tls is not None
    recorder.makepyfile(test_mtls_api=MTLS_TESTS.format(
        registrar=mtls.registrar("tls"), cert=mtls.tls.client_cert, key=mtls.tls.client_key,
        alice=user(1), bob=user(2), mallory=user(4)))
    seen = len(mtls.requests())
    result = recorder.runpytest("-p", "no:randomly", f"--sipflow-tls-ca={mtls.tls.ca}",
                                "--sipflow-register-timeout=3000")
    result.assert_outcomes(passed=2)
    run = mtls.requests()[seen:]
    assert {(r.method, r.proto) for r in run if r.from_user == user(1)} >= {
        ("REGISTER", "tls"), ("INVITE", "tls"), ("BYE", "tls")}
    assert user(4) not in mtls.registrations()


def test_ua_call_follows_a_302_unless_told_not_to(
        router: KamailioServer, recorder: pytest.Pytester, clean: str) -> None:
    recorder.makepyfile(test_redirect_api=REDIRECT_TESTS.format(
        registrar=router.registrar("udp"), alice=user(1), bob=user(2)))
    seen = len(router.requests())
    recorder.runpytest("-p", "no:randomly").assert_outcomes(passed=2)
    invites = [r.ruri_user for r in router.requests()[seen:] if r.method == "INVITE"]
    # each call's INVITE is challenged once: 2 × 2 to 302-<bob>, only the default one follows
    assert invites.count(f"302-{user(2)}") == 4 and invites.count(user(2)) == 1, invites


@pytest.mark.parametrize("keys, message", [
    ({"tls_cert": "client.pem"}, "needs both tls_cert and tls_key: tls_key is missing"),
    ({"tls_key": "client.key"}, "needs both tls_cert and tls_key: tls_cert is missing"),
    ({"sips": True, "registrar": "127.0.0.1:5060", "transport": "tcp"},
     "sips=True needs transport='tls' (sips: URIs are reached over TLS only), not 'TCP'"),
    ({"sips": True}, "sips=True needs transport='tls'"),
])
def test_bad_tls_keywords_are_refused_before_any_agent_starts(
        sip_instance: object, keys: dict[str, object], message: str) -> None:
    with pytest.raises(SipActionError) as err:
        sip_instance("alice", "100", **keys)  # type: ignore[operator]
    assert str(err.value).startswith("alice: ") and message in str(err.value)
