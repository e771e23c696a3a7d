"""The pcap rebuilt from a trace, read back by dpkt and by tshark."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import dpkt
import pytest

from pytest_sipflow.reporting.pcap import pcap_bytes, write_pcap

from sipflows import BASIC_CALL_ID, T0, basic_call

TSHARK = shutil.which("tshark")


def packets(data: bytes) -> list[tuple[float, dpkt.ethernet.Ethernet]]:
    reader = dpkt.pcap.Reader(io.BytesIO(data))
    assert reader.datalink() == dpkt.pcap.DLT_EN10MB
    return [(ts, dpkt.ethernet.Ethernet(buf)) for ts, buf in reader]


def tshark_sip(path: Path) -> list[list[str]]:
    assert TSHARK is not None
    out = subprocess.run([TSHARK, "-r", str(path), "-Y", "sip", "-T", "fields",
                          "-e", "sip.Method", "-e", "sip.Status-Code", "-e", "sip.Call-ID"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


BASIC_FIELDS = [["INVITE", "", BASIC_CALL_ID], ["", "180", BASIC_CALL_ID],
                ["", "200", BASIC_CALL_ID], ["ACK", "", BASIC_CALL_ID],
                ["BYE", "", BASIC_CALL_ID], ["", "200", BASIC_CALL_ID]]


def with_transport(transport: str, port: str | None = None) -> list[dict[str, object]]:
    recs = basic_call()
    for r in recs:
        r["transport"] = transport
        if port:
            r["local"] = str(r["local"]).replace(":5064", f":{port}")
            r["remote"] = str(r["remote"]).replace(":5064", f":{port}")
    return recs


def test_udp_call_once_per_message_with_addresses_ports_and_times() -> None:
    got = packets(pcap_bytes(basic_call()))
    assert len(got) == 6  # 12 records: each message sent and received
    ts, frame = got[0]
    assert ts == pytest.approx(T0, abs=1e-6)
    ip = frame.data
    assert isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.udp.UDP)
    assert (ip.src, ip.dst, ip.data.sport, ip.data.dport) == (
        b"\x7f\x00\x00\x01", b"\x7f\x00\x00\x01", 5062, 5064)
    assert ip.data.data == basic_call()[0]["text"].encode()
    assert [round(t - T0, 4) for t, _ in got] == [0.0, 0.002, 0.5, 0.501, 1.501, 1.502]
    assert [f.data.data.sport for _, f in got] == [5062, 5064, 5064, 5062, 5062, 5064]


def test_tcp_segments_count_sequence_numbers_per_direction() -> None:
    got = [f.data.data for _, f in packets(pcap_bytes(with_transport("TCP")))]
    assert all(isinstance(seg, dpkt.tcp.TCP) for seg in got)
    forward = [seg for seg in got if seg.sport == 5062]
    assert forward[1].seq == forward[0].seq + len(forward[0].data)
    assert forward[2].seq == forward[1].seq + len(forward[1].data)
    back = [seg for seg in got if seg.sport == 5064]
    assert back[0].ack == forward[0].seq + len(forward[0].data)


def test_ipv6_and_host_names_and_file_path(tmp_path: Path) -> None:
    recs = basic_call()[:2]
    recs[0]["local"], recs[0]["remote"] = "[::1]:5062", "[::1]:5064"
    recs[1]["local"], recs[1]["remote"] = "pbx.example.com:5060", "[::1]:5062"  # no tx: kept
    assert write_pcap(recs, tmp_path / "x.pcap") == 2
    (_, first), (_, second) = packets((tmp_path / "x.pcap").read_bytes())
    assert isinstance(first.data, dpkt.ip6.IP6) and first.data.data.dport == 5064
    assert isinstance(second.data, dpkt.ip6.IP6)  # v4 TEST-NET name mapped into v6
    assert second.data.dst.endswith(bytes([192, 0, 2, 1]))


def test_secrets_are_masked_in_payloads() -> None:
    data = pcap_bytes(basic_call(), secrets=["Alice"])
    assert b"Alice" not in data and b'From: "*****"' in data


def test_no_messages_is_an_empty_capture() -> None:
    assert packets(pcap_bytes([])) == []


@pytest.mark.skipif(TSHARK is None, reason="tshark (Debian package tshark) is not installed")
@pytest.mark.parametrize("transport, port", [("UDP", None), ("TCP", None), ("TLS", "5061")])
def test_tshark_reads_back_every_method_status_and_call_id(
        tmp_path: Path, transport: str, port: str | None) -> None:
    path = tmp_path / "basic.pcap"
    write_pcap(with_transport(transport, port), path)
    assert tshark_sip(path) == BASIC_FIELDS
