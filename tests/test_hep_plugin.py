"""``--sipflow-hep`` through the real plugin: a UDP receiver on 127.0.0.1 gets every message."""

from __future__ import annotations

import json
import socket
import struct
import time
from typing import Iterator

import pytest

from conftest import basic_call
from pytest_sipflow.reporting.trace import wire_messages


def chunks(data: bytes) -> dict[int, bytes]:
    """HEP3 read straight from the spec: "HEP3", total length, then (vendor, type, length)
    chunks; independent of the plugin's own decoder."""
    assert data[:4] == b"HEP3" and struct.unpack("!H", data[4:6])[0] == len(data)
    out, at = {}, 6
    while at < len(data):
        vendor, kind, length = struct.unpack("!HHH", data[at:at + 6])
        assert vendor == 0 and length >= 6
        out[kind] = data[at + 6:at + length]
        at += length
    assert at == len(data)
    return out


@pytest.fixture
def receiver() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    with sock:
        yield sock


def drain(sock: socket.socket) -> list[bytes]:
    sock.settimeout(1.0)
    got = []
    try:
        while True:
            got.append(sock.recv(65535))
    except socket.timeout:
        return got


def test_every_message_of_a_call_arrives_with_correct_chunks(
        sipflow_pytester: pytest.Pytester, receiver: socket.socket) -> None:
    port = receiver.getsockname()[1]
    sipflow_pytester.makefile(".sipflow.json", call=basic_call())
    before = time.time()
    result = sipflow_pytester.runpytest(f"--sipflow-hep=127.0.0.1:{port}",
                                        "--sipflow-hep-capture-id", "2001",
                                        "--sipflow-json", "out")
    result.assert_outcomes(passed=1)
    got = [chunks(d) for d in drain(receiver)]
    doc = json.loads(next((sipflow_pytester.path / "out").glob("*.json")).read_text())
    wire = wire_messages(doc["messages"])
    result.stdout.fnmatch_lines([f"sipflow HEP: {len(wire)} packets sent to 127.0.0.1:{port}"])
    assert len(got) == len(wire) >= 6
    starts = [c[15].split(b"\r\n", 1)[0].decode() for c in got]
    assert starts[0].startswith("INVITE ") and starts[-1] == "SIP/2.0 200 OK"
    for wanted in ("SIP/2.0 180 Ringing", "SIP/2.0 200 OK", "ACK ", "BYE "):
        assert any(s.startswith(wanted) for s in starts), (wanted, starts)
    call_ids = {m["sip_call_id"] for m in doc["messages"]}
    for c, record in zip(got, wire):
        assert c[1] == b"\x02" and c[2] == b"\x11"  # IPv4, UDP
        assert socket.inet_ntoa(c[3]) == "127.0.0.1" == socket.inet_ntoa(c[4])
        assert struct.unpack("!H", c[7])[0] == int(record.source.rsplit(":", 1)[1])
        assert struct.unpack("!H", c[8])[0] == int(record.destination.rsplit(":", 1)[1])
        t = struct.unpack("!I", c[9])[0] + struct.unpack("!I", c[10])[0] / 1e6
        assert before - 1 < t < time.time() and abs(t - record.t) < 1e-5
        assert c[11] == b"\x01" and struct.unpack("!I", c[12])[0] == 2001  # SIP, capture id
        assert c[15] == record.data
        assert c[17].decode() in call_ids and f"Call-ID: {c[17].decode()}".encode() in c[15]


def test_media_statistics_go_as_rtcp_json(sipflow_pytester: pytest.Pytester,
                                          receiver: socket.socket) -> None:
    """A call whose media is checked: one type-5 report per watched call, correlated by
    the call's SIP Call-ID, carrying the measured RTP counts."""
    port = receiver.getsockname()[1]
    doc = json.loads(basic_call())
    for node in doc["nodes"]:
        if node["id"] == "gone":
            node["data"]["expectMedia"] = {"received": True}
        if node["id"] == "talk":
            node["data"]["timeout"] = 400
    sipflow_pytester.makefile(".sipflow.json", call=json.dumps(doc))
    result = sipflow_pytester.runpytest(f"--sipflow-hep=127.0.0.1:{port}",
                                        "--sipflow-hep-capture-id", "7", "--sipflow-json", "out")
    result.assert_outcomes(passed=1)
    got = [chunks(d) for d in drain(receiver)]
    rtcp = [c for c in got if c[11] == b"\x05"]
    assert len(rtcp) == 1, [c[11] for c in got]
    (c,) = rtcp
    out = json.loads(next((sipflow_pytester.path / "out").glob("*.json")).read_text())
    bob_ids = {m["sip_call_id"] for m in out["messages"] if m["instance"] == "b"}
    assert c[17].decode() in bob_ids and struct.unpack("!I", c[12])[0] == 7
    report = json.loads(c[15])
    assert report["rx"]["packets"] > 5 and report["mos"]["rx"]["mos"] > 4


def test_a_bad_target_is_a_usage_error(sipflow_pytester: pytest.Pytester) -> None:
    result = sipflow_pytester.runpytest("--sipflow-hep=nowhere")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--sipflow-hep = 'nowhere': expected HOST:PORT*"])
