"""HEP3 packets: the chunks as the spec lays them out, and a real UDP receiver."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from pytest_sipflow.reporting.hep import (HepError, HepPacket, HepSender, decode_chunks,
                                          parse_target, rtcp_packet, sip_packets)
from pytest_sipflow.reporting.trace import wire_messages
from pytest_sipflow.testing.process import end_group, group_pids

from sipflows import BASIC_CALL_ID, T0, basic_call


def full_packet(**over: object) -> HepPacket:
    fields: dict = dict(src_ip="10.0.0.1", dst_ip="10.0.0.2", src_port=5062, dst_port=5064,
                        ts_sec=1714564800, ts_usec=123456, payload=b"INVITE sip:x SIP/2.0\r\n\r\n",
                        protocol=6, proto_type=1, capture_id=2001, correlation_id="abc@h",
                        auth_key="myHep")
    fields.update(over)
    return HepPacket(**fields)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field() -> None:
    for packet in (full_packet(), full_packet(src_ip="::1", dst_ip="fe80::2"),
                   full_packet(correlation_id=None, auth_key=None, payload=b"")):
        assert HepPacket.decode(packet.encode()) == packet


def test_chunks_are_laid_out_as_the_spec_says() -> None:
    data = full_packet().encode()
    assert data[:4] == b"HEP3" and struct.unpack("!H", data[4:6])[0] == len(data)
    chunks = decode_chunks(data)
    assert all(vendor == 0 for vendor, _, _ in chunks)
    by_type = {t: v for _, t, v in chunks}
    assert by_type == {1: b"\x02", 2: b"\x06", 3: bytes([10, 0, 0, 1]), 4: bytes([10, 0, 0, 2]),
                       7: struct.pack("!H", 5062), 8: struct.pack("!H", 5064),
                       9: struct.pack("!I", 1714564800), 10: struct.pack("!I", 123456),
                       11: b"\x01", 12: struct.pack("!I", 2001), 14: b"myHep",
                       15: b"INVITE sip:x SIP/2.0\r\n\r\n", 17: b"abc@h"}
    # every chunk's length field counts its own 6-byte header
    at = 6
    while at < len(data):
        length = struct.unpack("!H", data[at + 4:at + 6])[0]
        assert length == 6 + len(by_type[struct.unpack("!H", data[at + 2:at + 4])[0]])
        at += length


def test_ipv6_and_mixed_families() -> None:
    six = {t: v for _, t, v in decode_chunks(full_packet(src_ip="::1", dst_ip="::2").encode())}
    assert six[1] == b"\x0a" and len(six[5]) == 16 and 3 not in six
    mixed = HepPacket.decode(full_packet(src_ip="127.0.0.1", dst_ip="::1").encode())
    assert (mixed.src_ip, mixed.dst_ip) == ("::ffff:7f00:1", "::1")


@pytest.mark.parametrize("data, words", [
    (b"HEP2\x00\x06", "no 'HEP3'"),
    (b"HEP3\x00\x07", "length field"),
    (b"HEP3\x00\x0c\x00\x00\x00\x01\x00\x09", "bad length"),
    (b"HEP3\x00\x06", "lacks"),
])
def test_broken_packets_are_refused(data: bytes, words: str) -> None:
    with pytest.raises(HepError, match=words):
        HepPacket.decode(data)


def test_oversized_packet_is_refused() -> None:
    with pytest.raises(HepError, match="larger than one UDP datagram"):
        full_packet(payload=b"x" * 70000).encode()


def test_sip_packets_from_the_trace() -> None:
    packets = sip_packets(basic_call(), capture_id=7, secrets=["Alice"])
    wire = wire_messages(basic_call())
    assert len(packets) == len(wire) == 6  # each message once, not A's tx and B's rx
    first = packets[0]
    assert (first.src_ip, first.src_port, first.dst_ip, first.dst_port) == (
        "127.0.0.1", 5062, "127.0.0.1", 5064)
    assert (first.ts_sec, first.ts_usec) == (int(T0), 0)
    assert packets[1].ts_usec == 2000  # 180 Ringing 2 ms later
    assert {p.correlation_id for p in packets} == {BASIC_CALL_ID}
    assert all(p.protocol == 17 and p.proto_type == 1 and p.capture_id == 7 for p in packets)
    assert first.payload.startswith(b"INVITE sip:200@127.0.0.1:5064 SIP/2.0\r\n")
    assert b"Alice" not in first.payload and b'"*****"' in first.payload


def test_tls_goes_decrypted_as_tcp_and_names_get_test_net_addresses() -> None:
    records = [dict(r, transport="TLS") for r in basic_call()]
    records[0] = dict(records[0], remote="pbx.example.com:5061")
    packets = sip_packets(records)
    assert {p.protocol for p in packets} == {6}
    assert packets[0].dst_ip == "192.0.2.1" and packets[0].dst_port == 5061


def test_rtcp_report_is_type_5_json() -> None:
    packet = HepPacket.decode(rtcp_packet({"ssrc": 1, "jitter": 3}, "c@h", "127.0.0.1:4000",
                                          "127.0.0.1:4002", T0 + 0.5, capture_id=3).encode())
    assert packet.proto_type == 5 and packet.correlation_id == "c@h"
    assert json.loads(packet.payload) == {"ssrc": 1, "jitter": 3}
    assert (packet.ts_sec, packet.ts_usec, packet.src_port) == (int(T0), 500000, 4000)


def test_target_must_be_host_and_port() -> None:
    assert parse_target("[::1]:9060") == ("::1", 9060)
    for bad in ("127.0.0.1", "127.0.0.1:0", ":9060"):
        with pytest.raises(HepError, match="not host:port"):
            parse_target(bad)


def receive_all(sock: socket.socket, count: int) -> list[bytes]:
    sock.settimeout(5)
    return [sock.recv(65535) for _ in range(count)]


@pytest.mark.parametrize("host, family", [("127.0.0.1", socket.AF_INET),
                                          ("::1", socket.AF_INET6)])
def test_a_receiver_gets_every_message_of_a_call(host: str, family: int) -> None:
    try:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((host, 0))
    except OSError:
        pytest.skip(f"no {host} on this machine")
    with sock, HepSender(f"[{host}]:{sock.getsockname()[1]}" if ":" in host
                         else f"{host}:{sock.getsockname()[1]}", capture_id=2001) as sender:
        assert sender.send_records(basic_call()) == 6
        got = [HepPacket.decode(d) for d in receive_all(sock, 6)]
    wire = wire_messages(basic_call())
    starts = [p.payload.split(b"\r\n", 1)[0].decode() for p in got]
    assert starts == ["INVITE sip:200@127.0.0.1:5064 SIP/2.0", "SIP/2.0 180 Ringing",
                      "SIP/2.0 200 OK", "ACK sip:200@127.0.0.1:5064 SIP/2.0",
                      "BYE sip:200@127.0.0.1:5064 SIP/2.0", "SIP/2.0 200 OK"]
    for packet, record in zip(got, wire):
        chunks = {t: v for _, t, v in decode_chunks(packet.encode())}
        assert chunks[1] == b"\x02" and chunks[2] == b"\x11"  # IPv4, UDP
        assert socket.inet_ntoa(chunks[3]) == "127.0.0.1"
        assert struct.unpack("!H", chunks[7])[0] == int(record.source.rsplit(":", 1)[1])
        assert struct.unpack("!H", chunks[8])[0] == int(record.destination.rsplit(":", 1)[1])
        sec, usec = struct.unpack("!I", chunks[9])[0], struct.unpack("!I", chunks[10])[0]
        assert abs(sec + usec / 1e6 - record.t) < 1e-6
        assert struct.unpack("!I", chunks[12])[0] == 2001 and chunks[11] == b"\x01"
        assert chunks[15] == record.data and chunks[17] == BASIC_CALL_ID.encode()


def test_sender_never_raises() -> None:
    sender = HepSender("no-such-host.invalid:9060")
    assert sender.send_records(basic_call()) == 0
    assert sender.errors == 6 and "no-such-host.invalid" in sender.last_error
    huge = HepSender("127.0.0.1:9")
    assert huge.send(full_packet(payload=b"x" * 70000)) is False and huge.errors == 1
    huge.close()


KAMAILIO_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen=udp:127.0.0.1:{port}
mpath="{modules}"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "db_text.so"
loadmodule "sipcapture.so"
modparam("sipcapture", "db_url", "text://{db}")
modparam("sipcapture", "hep_capture_on", 1)
request_route {{ xlog("L_ERR", "HEPSIP $rm $ci from $si:$sp\\n"); exit; }}
onreply_route {{ xlog("L_ERR", "HEPSIP $rs $ci from $si:$sp\\n"); exit; }}
"""


def sipcapture_modules() -> str | None:
    from pytest_sipflow.testing.kamailio import _module_dir

    found = _module_dir()
    return str(found) if found is not None and (found / "sipcapture.so").exists() else None


@pytest.mark.skipif(shutil.which("kamailio") is None or sipcapture_modules() is None,
                    reason="kamailio with its sipcapture module not installed")
def test_kamailio_sipcapture_reads_our_packets(tmp_path: Path) -> None:
    """Kamailio's own HEP3 parser takes each packet apart and routes the SIP inside it,
    with the source address and port from our chunks (the datagram's own port differs)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    (tmp_path / "db").mkdir()
    cfg = tmp_path / "hep.cfg"
    cfg.write_text(KAMAILIO_CFG.format(port=port, modules=sipcapture_modules(),
                                       db=tmp_path / "db"))
    log = tmp_path / "kamailio.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(["kamailio", "-f", str(cfg), "-DD", "-E"], stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wanted = ["HEPSIP INVITE 9a8b7c6d5e4f@127.0.0.1 from 127.0.0.1:5062",
                  "HEPSIP BYE 9a8b7c6d5e4f@127.0.0.1 from 127.0.0.1:5062",
                  "HEPSIP 200 9a8b7c6d5e4f@127.0.0.1 from 127.0.0.1:5064"]
        deadline = time.monotonic() + 15
        with HepSender(f"127.0.0.1:{port}", capture_id=2001) as sender:
            while time.monotonic() < deadline and server.poll() is None:
                sender.send_records(basic_call())  # again until the server listens
                time.sleep(0.3)
                text = log.read_text(errors="replace")
                if all(w in text for w in wanted):
                    break
        text = log.read_text(errors="replace")
        assert all(w in text for w in wanted), text[-3000:]
        assert "HEPSIP 180 9a8b7c6d5e4f@127.0.0.1 from 127.0.0.1:5064" in text
    finally:  # the whole group: a worker left behind when only the main process got SIGTERM
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        end_group(server.pid, 5.0)
        server.wait(10)
        assert group_pids(server.pid) == []
