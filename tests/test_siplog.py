"""SIP messages out of pjsua's log entries (pytest_sipflow.sip.siplog): no pjsua2.

The entries are pjsua 2.15.1's own lines, captured with ``logConfig.decor = 0``.
"""

from __future__ import annotations

import subprocess
import sys

from pytest_sipflow.sip.siplog import LoggedSip, SipLogReader, message_entry

OPTIONS = ("OPTIONS sip:x@127.0.0.1:27461 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:27463;"
           "branch=z9hG4bK1\r\nCall-ID: abc\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
RX = (f"RX {len(OPTIONS)} bytes Request msg OPTIONS/cseq=1 (rdata0x5582396b83a8) from UDP "
      f"127.0.0.1:27463:\n{OPTIONS}\n--end msg--")
TX = ("TX 32 bytes Response msg 200/OPTIONS/cseq=1 (tdta0x5582396ba378) to TCP "
      "127.0.0.1:27463:\nSIP/2.0 200 OK\r\nCall-ID: abc\r\n\r\n\n--end msg--")
DROPPING = ("Dropping 73 bytes packet from UDP 127.0.0.1:27463 : PJSIP syntax error exception "
            "when parsing 'Request Line' header on line 1 col 9\n")
DROPPED = "Dropped packet:GARBAGE, not SIP\r\n\r\n\n-- end of packet."
ERROR_PKT = ("Error processing packet from 127.0.0.1:27463: Missing required header(s) "
             "(PJSIP_EMISSINGHDR)  To [code 171050]:\nINVITE sip:x@127.0.0.1 SIP/2.0\r\n"
             "CSeq: 1 INVITE\r\n\r\n\n-- end of packet.")


def test_a_received_message_keeps_its_bytes_transport_and_peer() -> None:
    assert SipLogReader().feed(RX) == (True, LoggedSip("rx", "UDP", "127.0.0.1:27463",
                                                       OPTIONS.encode()))


def test_a_sent_message_is_tx_and_whole_when_its_size_matches() -> None:
    logged = message_entry(TX)
    assert (logged.direction, logged.transport, logged.remote) == ("tx", "TCP",
                                                                   "127.0.0.1:27463")
    assert logged.raw == b"SIP/2.0 200 OK\r\nCall-ID: abc\r\n\r\n"
    assert not logged.truncated and not logged.malformed


def test_a_message_shorter_than_its_announced_size_is_truncated() -> None:
    cut = RX.replace(f"RX {len(OPTIONS)} bytes", f"RX {len(OPTIONS) + 500} bytes")
    assert message_entry(cut).truncated


def test_a_head_line_of_another_shape_still_gives_the_message() -> None:
    logged = message_entry(f"RX something else:\n{OPTIONS}\n--end msg--")
    assert (logged.transport, logged.remote, logged.truncated) == ("UDP", None, False)
    assert logged.raw == OPTIONS.encode()


def test_peer_bytes_that_are_not_utf8_come_back_as_they_were() -> None:
    raw = b"MESSAGE sip:x SIP/2.0\r\nSubject: caf\xe9\r\n\r\n"
    text = raw.decode("utf-8", "surrogateescape")
    logged = message_entry(f"RX {len(raw)} bytes Request msg (r) from UDP 1.2.3.4:5:\n"
                           f"{text}\n--end msg--")
    assert logged.raw == raw and not logged.truncated


def test_a_dropped_packet_joins_its_dropping_line() -> None:
    reader = SipLogReader()
    assert reader.feed(DROPPING) == (True, None)
    was_sip, logged = reader.feed(DROPPED)
    assert was_sip and logged == LoggedSip(
        "rx", "UDP", "127.0.0.1:27463", b"GARBAGE, not SIP\r\n\r\n", malformed=True,
        error="PJSIP syntax error exception when parsing 'Request Line' header on line 1 col 9")
    # the Dropping line is used once: a second dump alone has no peer
    assert reader.feed(DROPPED)[1] == LoggedSip("rx", "UDP", None, b"GARBAGE, not SIP\r\n\r\n",
                                                malformed=True, error="unparseable")


def test_a_packet_pjsip_could_not_process_is_malformed_with_its_reason() -> None:
    was_sip, logged = SipLogReader().feed(ERROR_PKT)
    assert was_sip and logged is not None
    assert logged.transport is None  # the log does not say: the agent picks its own
    assert logged.remote == "127.0.0.1:27463" and logged.malformed
    assert logged.error == "Missing required header(s) (PJSIP_EMISSINGHDR)  To [code 171050]"
    assert logged.raw == b"INVITE sip:x@127.0.0.1 SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n"


def test_other_log_lines_are_not_sip() -> None:
    reader = SipLogReader()
    for line in ("Call 0 is DISCONNECTED [reason=200 (Normal call clearing)]",
                 "TX 10 bytes without its end marker", "Dropped packet: no end marker"):
        assert reader.feed(line) == (False, None)


def test_the_reader_needs_no_pjsua2() -> None:
    code = ("import sys, pytest_sipflow.sip.siplog; "
            "assert 'pjsua2' not in sys.modules, 'pjsua2 imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
