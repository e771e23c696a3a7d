"""SipRecord, the full text trace, secret masking and wire de-duplication."""

from __future__ import annotations

import base64

import pytest

from pytest_sipflow.reporting.trace import SipRecord, mask_secrets, render_trace, wire_messages
from pytest_sipflow.sip.address import split_address

from sipflows import BUSY_CALL_ID, T0, busy_call


def test_record_round_trips_through_its_dict() -> None:
    for data in busy_call():
        record = SipRecord.from_dict(data)
        assert record.as_dict() == data
        assert record.data == data["text"].encode()


def test_record_defaults_and_source_destination() -> None:
    rec = SipRecord.from_dict({"dir": "rx", "t": 1, "local": "127.0.0.1:5064",
                               "remote": "127.0.0.1:5060", "text": "OPTIONS sip:x SIP/2.0\r\n\r\n",
                               "transport": "tcp"})
    assert (rec.transport, rec.summary, rec.raw, rec.call, rec.instance) == (
        "TCP", "OPTIONS sip:x SIP/2.0", "", None, "")
    assert (rec.source, rec.destination) == ("127.0.0.1:5060", "127.0.0.1:5064")
    assert rec.data == b"OPTIONS sip:x SIP/2.0\r\n\r\n"  # no raw: the text's bytes


def test_split_address_v4_v6_and_no_port() -> None:
    assert split_address("127.0.0.1:5060") == ("127.0.0.1", 5060)
    assert split_address("[::1]:5061") == ("::1", 5061)
    assert split_address("pbx.example.com") == ("pbx.example.com", 0)
    assert split_address("::1") == ("::1", 0)


def test_mask_secrets_replaces_only_the_secrets_longest_first() -> None:
    text = 'Authorization: Digest username="100", secret=s3cr3t-long s3cr3t'
    assert mask_secrets(text, ["s3cr3t", "s3cr3t-long", ""]) == (
        'Authorization: Digest username="100", secret=***** *****')
    assert mask_secrets(text, []) == text


def test_masked_record_masks_text_summary_and_raw_bytes() -> None:
    data = dict(busy_call()[0], text="INVITE sip:pw123@x SIP/2.0\r\nX-Pass: pw123\r\n\r\n",
                summary="INVITE sip:pw123@x SIP/2.0")
    data["raw"] = base64.b64encode(data["text"].encode()).decode()
    rec = SipRecord.from_dict(data).masked(["pw123"])
    assert "pw123" not in rec.text + rec.summary
    assert rec.data == b"INVITE sip:*****@x SIP/2.0\r\nX-Pass: *****\r\n\r\n"
    assert SipRecord.from_dict(data).masked([]) == SipRecord.from_dict(data)


def test_wire_messages_keeps_the_send_and_drops_the_matching_receive() -> None:
    records = busy_call()
    wire = wire_messages(records)
    assert [(r.instance, r.direction, r.summary) for r in wire] == [
        ("alice", "tx", "INVITE sip:200@127.0.0.1:5064 SIP/2.0"),
        ("bob", "tx", "SIP/2.0 100 Trying"),
        ("bob", "tx", "SIP/2.0 180 Ringing"),
        ("bob", "tx", "SIP/2.0 486 Busy Here"),
        ("alice", "tx", "ACK sip:200@127.0.0.1:5064 SIP/2.0")]


def test_wire_messages_keeps_retransmissions_and_foreign_messages() -> None:
    invite_tx, invite_rx = busy_call()[:2]
    again_tx = dict(invite_tx, t=invite_tx["t"] + 0.5)
    again_rx = dict(invite_rx, t=invite_rx["t"] + 0.5)
    assert len(wire_messages([invite_tx, invite_rx, again_tx, again_rx])) == 2
    lost = wire_messages([invite_tx, again_tx, invite_rx])  # second copy never arrived
    assert [r.direction for r in lost] == ["tx", "tx"]
    foreign = dict(invite_rx, remote="127.0.0.1:5060")  # from a proxy: no tx recorded
    assert wire_messages([invite_tx, foreign]) == [SipRecord.from_dict(invite_tx),
                                                    SipRecord.from_dict(foreign)]


def test_render_trace_shows_every_record_with_header_line() -> None:
    text = render_trace(busy_call())
    heads = [line for line in text.splitlines() if line.startswith("#")]
    assert len(heads) == 10
    assert heads[0] == "#1 2024-05-01 12:00:00.000Z +0.0 ms alice tx UDP 127.0.0.1:5062 -> 127.0.0.1:5064"
    assert heads[1] == "#2 2024-05-01 12:00:00.000Z +0.3 ms bob rx UDP 127.0.0.1:5064 <- 127.0.0.1:5062"
    assert heads[7] == "#8 2024-05-01 12:00:01.012Z +1012.9 ms alice rx UDP 127.0.0.1:5062 <- 127.0.0.1:5064"
    assert "\r" not in text
    block = text.split("\n\n")[0].splitlines()
    assert block[1:] == ["INVITE sip:200@127.0.0.1:5064 SIP/2.0",
                         block[2], "Max-Forwards: 70",
                         'From: "Alice" <sip:100@127.0.0.1:5062>;tag=a1b2c3',
                         "To: <sip:200@127.0.0.1:5064>", f"Call-ID: {BUSY_CALL_ID}",
                         "CSeq: 1 INVITE", "Content-Length: 0"]
    assert block[2].startswith("Via: SIP/2.0/UDP 127.0.0.1:5062;rport;branch=z9hG4bK")


def test_render_trace_sorts_by_time_masks_and_handles_empty() -> None:
    records = list(reversed(busy_call()))
    assert render_trace(records).startswith("#1 2024-05-01 12:00:00.000Z +0.0 ms alice tx")
    masked = render_trace(busy_call(), secrets=["Alice", "a1b2c3"])
    assert "Alice" not in masked and "a1b2c3" not in masked
    assert masked.count('From: "*****" <sip:100@127.0.0.1:5062>;tag=*****') == 10
    assert render_trace([]) == "(no SIP messages)"
    assert T0 == 1714564800.0


def test_reporting_and_checks_import_no_pytest_pjsua2_socket_or_dpkt() -> None:
    import subprocess
    import sys

    code = ("import sys, pytest_sipflow.reporting.results_json, pytest_sipflow.reporting.html, "
            "pytest_sipflow.reporting.pcap, pytest_sipflow.reporting.ladder, "
            "pytest_sipflow.sip.checks; "
            "print([m for m in ('pytest', 'pjsua2', 'socket', 'dpkt') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"


OLD_AGENT_EVENT = {"event": "sip", "t": 1478.145278, "dir": "tx",
                   "summary": "INVITE sip:200@127.0.0.1:9602 SIP/2.0", "call": "c1",
                   "peer": "UDP 127.0.0.1:9602", "instance": "a",
                   "text": "INVITE sip:200@127.0.0.1:9602 SIP/2.0\r\nVia: x\r\n"
                           "i: 6fSFs1Zv\r\nCSeq: 1 INVITE\r\n\r\nCall-ID: in-the-body"}


def test_event_of_an_older_agent_gets_remote_local_call_id_and_wall_clock() -> None:
    rec = SipRecord.from_event(OLD_AGENT_EVENT, "127.0.0.1:9600", clock_offset=T0 - 1478.0)
    assert (rec.direction, rec.transport, rec.local, rec.remote) == (
        "tx", "UDP", "127.0.0.1:9600", "127.0.0.1:9602")
    assert rec.t == pytest.approx(T0 + 0.145278)
    assert (rec.sip_call_id, rec.call, rec.instance) == ("6fSFs1Zv", "c1", "a")  # compact form
    assert rec.data == OLD_AGENT_EVENT["text"].encode()


def test_event_of_a_monotonic_clock_lands_near_now_without_an_offset() -> None:
    import time

    rec = SipRecord.from_event(dict(OLD_AGENT_EVENT, t=time.monotonic()), "127.0.0.1:9600")
    assert abs(rec.t - time.time()) < 60


def test_event_in_the_record_shape_is_taken_as_it_is() -> None:
    data = dict(busy_call()[0], event="sip", peer="UDP 10.0.0.9:1", wall=T0 + 5)
    rec = SipRecord.from_event(data, "10.9.9.9:1")
    assert (rec.local, rec.remote, rec.t) == (data["local"], data["remote"], T0 + 5)
    assert rec.sip_call_id == BUSY_CALL_ID and rec.raw == data["raw"]
