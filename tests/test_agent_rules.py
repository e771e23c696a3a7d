"""The agent's call-state and request rules (pytest_sipflow.agent.rules): no pjsua2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_sipflow.agent import rules
from pytest_sipflow.agent.rules import (
    Outcome, OpError, check_audio_file, check_headers, check_status_code, codec_priorities,
    dtmf_info_body, dtmf_request, hold_change, id_uri, message_outcome, refer_outcome,
    register_outcome, reinvite_outcome, sip_uri, state_name, tls_settings, uri_host)

CODECS = ["speex/16000/1", "speex/8000/1", "PCMU/8000/1", "PCMA/8000/1", "G722/16000/1"]


def test_state_names_are_pjsip_invite_states() -> None:
    assert [state_name(i) for i in range(7)] == ["NULL", "CALLING", "INCOMING", "EARLY",
                                                 "CONNECTING", "CONFIRMED", "DISCONNECTED"]
    assert state_name(42) == "42"


@pytest.mark.parametrize("direction, was_held, change", [
    ("sendonly", False, "held"), ("inactive", False, "held"),
    ("sendonly", True, None), ("inactive", True, None),
    ("sendrecv", True, "retrieved"), ("recvonly", True, "retrieved"),
    ("sendrecv", False, None), ("recvonly", False, None),
])
def test_hold_follows_the_direction_of_the_peers_offer(direction: str, was_held: bool,
                                                       change: str | None) -> None:
    assert hold_change(direction, was_held) == change


def test_a_reinvite_is_answered_only_by_its_final_response() -> None:
    assert reinvite_outcome(100, True, "Trying") is None
    assert reinvite_outcome(200, False, "OK") is None  # transaction still running
    assert reinvite_outcome(200, True, "OK") == Outcome(True, {"code": 200})
    assert reinvite_outcome(488, True, "Not Acceptable Here") == Outcome(
        False, error="re-INVITE answered 488 Not Acceptable Here")


def test_a_refer_fails_only_on_a_final_error_notify() -> None:
    assert refer_outcome(100, False, "Accepted") == Outcome(True, {"code": 100})
    assert refer_outcome(200, True, "OK") == Outcome(True, {"code": 200})
    assert refer_outcome(486, False, "Busy Here") == Outcome(True, {"code": 486})
    assert refer_outcome(486, True, "Busy Here") == Outcome(
        False, error="REFER failed: 486 Busy Here")


def test_register_outcomes() -> None:
    where = "sip:127.0.0.1:5060"
    out = register_outcome("register", where, True, False, 403, "Forbidden", None,
                           {"code": 403})
    assert out == Outcome(True, {"code": 403})  # a test may expect a 403
    out = register_outcome("configure", where, True, True, 403, "Forbidden", None, {})
    assert out == Outcome(False, error=f"configure: registration to {where} refused: "
                                       "403 Forbidden")
    out = register_outcome("configure", where, True, True, 200, "OK", None, {"uri": "u"})
    assert out == Outcome(True, {"uri": "u"})
    out = register_outcome("register", where, False, False, 408, "Request Timeout",
                           "Connection refused", {})
    assert out == Outcome(False, error=f"register: REGISTER to {where} failed: "
                                       "408 Request Timeout (Connection refused)")


def test_message_outcome() -> None:
    assert message_outcome(202, "Accepted") == Outcome(True, {"code": 202, "reason": "Accepted"})
    assert message_outcome(404, "Not Found").error == "send_message: MESSAGE answered 404 Not Found"


def test_status_codes_outside_100_699_are_refused() -> None:
    assert check_status_code(699) == 699
    for code in (99, 700):
        with pytest.raises(OpError, match="not in 100-699"):
            check_status_code(code)


def test_codec_priorities_follow_the_list_and_disable_the_rest() -> None:
    assert codec_priorities(CODECS, ["pcma", "PCMU/8000/1"]) == {
        "speex/16000/1": 0, "speex/8000/1": 0, "PCMU/8000/1": 254, "PCMA/8000/1": 255,
        "G722/16000/1": 0}
    # a name matches every clock rate of that codec
    assert codec_priorities(CODECS, ["speex"])["speex/8000/1"] == 255
    with pytest.raises(OpError, match=r"unknown codec 'opus' \(available: G722, PCMA, PCMU"):
        codec_priorities(CODECS, ["opus"])
    for bad in ("PCMU", [], None):
        with pytest.raises(OpError, match="non-empty list"):
            codec_priorities(CODECS, bad)


def test_uris() -> None:
    assert sip_uri("example.com:5080", "UDP") == "sip:example.com:5080"
    assert sip_uri("example.com", "TLS") == "sip:example.com;transport=tls"
    assert sip_uri("sip:x@h;transport=TCP", "TCP") == "sip:x@h;transport=TCP"
    assert uri_host("sip:alice@example.com:5061;transport=tls") == "example.com"
    assert uri_host("sip:[::1]:5060") == "[::1]"
    assert id_uri("", "sip:a@h") == "<sip:a@h>"
    assert id_uri('Al "the" \\ one', "sip:a@h") == '"Al \\"the\\" \\\\ one" <sip:a@h>'


def test_headers_must_be_an_object() -> None:
    assert check_headers(None) == {}
    assert check_headers({"X-A": "1"}) == {"X-A": "1"}
    with pytest.raises(OpError, match="'headers' must be an object"):
        check_headers(["X-A: 1"])


def test_tls_settings(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    assert tls_settings(None) == {"ca_file": "", "cert_file": "", "key_file": "",
                                  "key_password": "", "verify_server": True,
                                  "verify_client": False}
    assert tls_settings({"ca_file": str(ca), "verify_server": False})["ca_file"] == str(ca)
    with pytest.raises(OpError, match="unknown tls option.*ca_fiel"):
        tls_settings({"ca_fiel": str(ca)})
    with pytest.raises(OpError, match="tls cert_file: file not found"):
        tls_settings({"cert_file": str(tmp_path / "missing.pem")})
    with pytest.raises(OpError, match="'tls' must be an object"):
        tls_settings("yes")


def test_dtmf_requests() -> None:
    req = dtmf_request({"digits": "12ab#", "method": "INFO", "headers": {"X-A": "1"}})
    assert (req.digits, req.method, req.interval_ms, req.headers) == ("12AB#", "info", 100,
                                                                       {"X-A": "1"})
    assert dtmf_request({"digits": "1", "headers": ""}).headers == {}
    for args, text in [({"digits": ""}, "no digits"), ({"digits": "1E"}, "invalid DTMF digit"),
                       ({"digits": "1", "method": "inband"}, "unknown DTMF method"),
                       ({"digits": "1", "interval_ms": -1}, "interval_ms must be >= 0"),
                       ({"digits": "1", "headers": {"X-A": "1"}}, "headers need method 'info'"),
                       ({"digits": "1", "headers": ["X"]}, "must be an object")]:
        with pytest.raises(OpError, match=text):
            dtmf_request(args)
    assert dtmf_info_body("5", 160) == "Signal=5\r\nDuration=160\r\n"


def test_audio_files(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"RIFF")
    assert check_audio_file(str(wav)) == str(wav)
    for path, text in [(None, "missing 'path'"), (str(tmp_path / "no.wav"), "file not found")]:
        with pytest.raises(OpError, match=text):
            check_audio_file(path)
    if os.geteuid() != 0:  # root reads every file
        wav.chmod(0)
        with pytest.raises(OpError, match="file not readable"):
            check_audio_file(str(wav))


def test_the_rules_need_no_pjsua2() -> None:
    code = ("import sys, pytest_sipflow.agent.rules; "
            "assert 'pjsua2' not in sys.modules, 'pjsua2 imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_refer_to_brackets_a_uri_with_parameters() -> None:
    assert rules.refer_to("sip:carol@127.0.0.1:5070") == "sip:carol@127.0.0.1:5070"
    assert rules.refer_to("sip:carol@h;transport=tcp") == "<sip:carol@h;transport=tcp>"
    assert rules.refer_to("sip:c@h?Replaces=x") == "<sip:c@h?Replaces=x>"
    assert rules.refer_to("<sip:c@h;transport=tcp>") == "<sip:c@h;transport=tcp>"
