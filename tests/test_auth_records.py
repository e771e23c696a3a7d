"""The pure parsers behind the auth tests: challenge lines of the test server's log and the
realms of a 401/407 (rules.challenge_realms), which name a realm mismatch."""

from __future__ import annotations

from pytest_sipflow.agent.rules import challenge_realms, register_outcome
from pytest_sipflow.testing.records import Challenge, challenges_in

LOG = [
    " 1(7) NOTICE: <script>: SIPFLOW-AUTH code=401 method=REGISTER from=1001 indialog=0 "
    "stale=0 result=-5 callid=abc",
    " 1(7) NOTICE: <script>: SIPFLOW-REQ method=BYE from=1001 ruri=1002 proto=udp "
    "src=127.0.0.1:5 callid=x",
    " 2(8) NOTICE: <script>: SIPFLOW-AUTH code=407 method=BYE from=<null> indialog=1 "
    "stale=1 result=-4 callid=x y",
]


def test_challenge_lines_are_parsed_and_filtered_by_method() -> None:
    assert challenges_in(LOG) == [
        Challenge(401, "REGISTER", "1001", False, False, -5, "abc"),
        Challenge(407, "BYE", None, True, True, -4, "x y")]
    assert [c.code for c in challenges_in(LOG, "bye")] == [407]
    assert challenges_in(LOG[1:2]) == []


def test_realms_of_a_challenge() -> None:
    msg = ('SIP/2.0 407 Proxy Authentication Required\r\nVia: x\r\n'
           'Proxy-Authenticate: Digest realm="pbx.example", nonce="n", qop="auth"\r\n'
           'WWW-Authenticate: Digest nonce="m", realm="other"\r\n'
           'Proxy-Authenticate: Digest realm="pbx.example", nonce="o"\r\n\r\n')
    assert challenge_realms(msg) == ["pbx.example", "other"]
    assert challenge_realms("SIP/2.0 401 Unauthorized\r\nX-Realm: realm=\"no\"\r\n") == []


def test_a_refused_registration_names_the_challenged_realm() -> None:
    out = register_outcome("configure", "sip:h", True, True, 401, "Unauthorized", None, {},
                           ["127.0.0.1"])
    assert not out.ok and out.error is not None
    assert out.error.endswith('401 Unauthorized; challenge realm "127.0.0.1"')
