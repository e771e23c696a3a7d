"""SIP text parsing without pjsua2 or sockets (pytest_sipflow.sip.message)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_sipflow.sip.message import (COMPACT, Headers, decode_text, parse, raw_of, readable,
                                        sdp_direction)

INVITE = (
    "INVITE sip:200@127.0.0.1:5062 SIP/2.0\r\n"
    "v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0\r\n"
    'f: "Alice" <sip:100@127.0.0.1>;tag=a\r\n'
    "T: <sip:200@127.0.0.1>\r\n"
    "i: abc@host\r\n"
    "CSeq: 17 INVITE\r\n"
    "Subject: a long\r\n"
    "  folded\tsubject\r\n"
    "X-Custom: one\r\n"
    "x-custom: two\r\n"
    "c: application/sdp\r\n"
    "l: 10\r\n"
    "\r\n"
    "v=0\r\ns=-\r\n"
)


def test_request_start_line_headers_and_body() -> None:
    msg = parse(INVITE.encode())
    assert msg.is_request and not msg.is_response
    assert (msg.method, msg.request_uri) == ("INVITE", "sip:200@127.0.0.1:5062")
    assert msg.start_line == "INVITE sip:200@127.0.0.1:5062 SIP/2.0"
    assert msg.call_id == "abc@host"
    assert msg.cseq == (17, "INVITE")
    assert msg.headers.get_all("via") == ["SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1",
                                          "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0"]
    assert msg.headers.get("v") == msg.headers.get("VIA")
    assert msg.headers.get("From") == '"Alice" <sip:100@127.0.0.1>;tag=a'
    assert msg.headers.get("to") == "<sip:200@127.0.0.1>"
    assert msg.headers.get("Subject") == "a long folded\tsubject"
    assert msg.headers.get_all("X-CUSTOM") == ["one", "two"]
    assert msg.headers.as_dict()["X-Custom"] == "one, two"
    assert msg.headers.as_dict()["Content-Type"] == "application/sdp"
    assert msg.body == "v=0\ns=-\n"
    assert "Missing" not in msg.headers and "l" in msg.headers


def test_every_compact_form_equals_its_full_name() -> None:
    for short, full in COMPACT.items():
        h = Headers()
        h.add(short.upper(), "x")
        assert h.get(full) == "x" and h.get(short) == "x" and h.items[0][0] == full


def test_response_and_bare_lf() -> None:
    msg = parse("SIP/2.0 486 Busy Here\nCall-ID: z\nCSeq: 2 BYE\n\n")
    assert msg.is_response and (msg.status, msg.reason) == (486, "Busy Here")
    assert msg.call_id == "z" and msg.cseq == (2, "BYE")
    assert parse(b"SIP/2.0 200\r\n\r\n").reason == ""


def test_latin1_bytes_are_kept_and_readable() -> None:
    raw = 'OPTIONS sip:a SIP/2.0\r\nFrom: "José Müller" <sip:j@x>\r\n\r\n'.encode("latin-1")
    msg = parse(raw)
    assert msg.raw == raw
    assert msg.headers.get("from") == '"José Müller" <sip:j@x>'
    # as SWIG hands such text over: surrogate escapes
    swig = raw.decode("utf-8", "surrogateescape")
    assert raw_of(swig) == raw
    assert readable(swig) == raw.decode("latin-1")
    assert parse(swig).raw == raw
    assert decode_text("Zoë".encode()) == "Zoë"
    assert readable("plain") == "plain" and readable("Zoë") == "Zoë"


def test_garbage_gives_a_message_not_an_exception() -> None:
    for data in (b"", b"\xff\xfe", b"\r\n\r\n", b"NOT SIP AT ALL", b": no name\r\n x\r\n"):
        msg = parse(data)
        assert msg.method is None and msg.status is None and msg.call_id is None
        assert msg.cseq == (None, None)
    assert parse(b"CSeq-less\r\nCSeq: abc\r\n\r\n").cseq == (None, None)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_parse_never_fails_and_keeps_the_bytes(data: bytes) -> None:
    msg = parse(data)
    assert msg.raw == data
    msg.text.encode("utf-8")  # always encodable
    readable(data.decode("utf-8", "surrogateescape")).encode("utf-8")


def test_sdp_direction() -> None:
    assert sdp_direction("v=0\r\nm=audio 4000 RTP/AVP 0\r\na=sendonly\r\n") == "sendonly"
    assert sdp_direction("v=0\na=inactive\nm=audio 4000 RTP/AVP 0\n") == "inactive"
    assert sdp_direction("v=0\na=sendonly\nm=audio 1 RTP/AVP 0\na=sendrecv\n") == "sendrecv"
    assert sdp_direction("v=0\nc=IN IP4 0.0.0.0\nm=audio 1 RTP/AVP 0\n") == "sendonly"
    assert sdp_direction("m=video 1 RTP/AVP 96\na=inactive\nm=audio 2 RTP/AVP 0\n") == "sendrecv"
    assert sdp_direction("") == "sendrecv"
