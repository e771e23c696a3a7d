"""The real rtpengine, driven over its ng protocol (bencode over UDP) on 127.0.0.1."""

from __future__ import annotations

import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_sipflow.testing.process import claim_media_block, free_port_block, group_pids
from pytest_sipflow.testing.rtpengine import RtpEngine, RtpengineError

pytestmark = pytest.mark.skipif(shutil.which("rtpengine") is None,
                                reason="rtpengine is not installed (Debian package "
                                       "rtpengine-daemon; run ./install.sh)")

SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
       "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n")


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[RtpEngine]:
    ng = free_port_block(1, 13000, 100)
    media, claim = claim_media_block(40, 47000, 400)
    engine = RtpEngine(ng, media, media + 39, workdir=tmp_path / "rtpengine").start()
    try:
        yield engine
    finally:
        pid = engine.pid
        engine.stop()
        claim.close()
        assert not group_pids(pid), f"rtpengine left processes: {group_pids(pid)}"
        assert not Path(f"/proc/{pid}").exists(), f"rtpengine pid {pid} not reaped"


def media_port(sdp: str) -> int:
    return int(re.search(r"^m=audio (\d+) ", sdp, re.MULTILINE).group(1))


def test_rtpengine_relays_an_offer_answer_pair(relay: RtpEngine) -> None:
    """ping → pong; offer/answer SDPs come back pointing at the relay, and an RTP packet
    sent to the relay's port reaches the other side."""
    assert relay.ping()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        a_port, b_port = a.getsockname()[1], b.getsockname()[1]
        offer = relay.offer("call-1", "tag-a", SDP.format(port=a_port))["sdp"]
        answer = relay.answer("call-1", "tag-a", "tag-b", SDP.format(port=b_port))["sdp"]
        for sdp in (offer, answer):
            assert re.search(r"^c=IN IP4 127\.0\.0\.1\r?$", sdp, re.MULTILINE), sdp
            assert relay.port_min <= media_port(sdp) <= relay.port_max, sdp
        assert media_port(offer) not in (a_port, b_port)

        packet = bytes([0x80, 0x00, 0x00, 0x01]) + bytes(8) + b"\xff" * 160  # RTP, PCMU
        a.sendto(packet, ("127.0.0.1", media_port(answer)))  # A talks to "B" = the relay
        b.settimeout(2.0)
        data, sender = b.recvfrom(2048)
        assert data[12:] == packet[12:]
        assert sender == ("127.0.0.1", media_port(offer))  # B hears it from the relay
    assert "call-1" in relay.log_text()
    assert relay.delete("call-1", "tag-a")["result"] == "ok"


def test_rtpengine_refusal_names_its_reason(relay: RtpEngine) -> None:
    """An answer for a call it never saw is refused, with rtpengine's own reason."""
    with pytest.raises(RtpengineError, match=r"^rtpengine answer: Unknown call-id$"):
        relay.answer("no-such-call", "tag-a", "tag-b", SDP.format(port=40000))
