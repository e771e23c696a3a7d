"""Media statistics records: strict JSON round trip, derived loss/burst/MOS, the table."""

from __future__ import annotations

import json

import pytest

from pytest_sipflow.media.stats import Direction, MediaStats, MediaStatsError, format_table


def sample(**changes: object) -> MediaStats:
    base = dict(
        codec="PCMU", payload_type=0, clock_rate=8000, duration_s=2.0, ptime_ms=20,
        rx=Direction(packets=100, bytes=16000, jitter_mean_ms=0.5, jitter_max_ms=1.5,
                     loss_bursts=0, jitter_buffer_ms=40),
        tx=Direction(packets=100, bytes=16000, jitter_mean_ms=0.4, jitter_max_ms=1.0),
        rtt_ms=0.3, remote_rtp="127.0.0.1:4002", first_packet_ms=21.0,
    )
    base.update(changes)
    return MediaStats(**base)  # type: ignore[arg-type]


def test_json_round_trip_keeps_everything_and_adds_mos() -> None:
    stats = sample(srtp=True, crypto_suite="AES_CM_128_HMAC_SHA1_80")
    text = json.dumps(stats.to_dict())
    data = json.loads(text)
    assert data["rx"]["packets"] == 100 and data["crypto_suite"] == "AES_CM_128_HMAC_SHA1_80"
    assert data["mos"]["rx"]["mos"] >= 4.3 and data["mos"]["tx"]["r"] > 90
    assert MediaStats.from_dict(data) == stats


def test_mos_is_none_for_a_direction_without_packets() -> None:
    stats = sample(rx=Direction())
    assert stats.mos("rx") is None
    assert stats.to_dict()["mos"]["rx"] is None
    assert stats.mos("tx") is not None


@pytest.mark.parametrize(("data", "message"), [
    ({"codec": "PCMU", "payload_type": 0, "clock_rate": 8000, "duration_s": 1, "jiter": 1},
     "unknown key(s) ['jiter']"),
    ({"codec": "PCMU", "payload_type": 0, "clock_rate": 8000}, "missing key(s) ['duration_s']"),
    ({"codec": "PCMU", "payload_type": "0", "clock_rate": 8000, "duration_s": 1},
     "'payload_type' must be int"),
    ({"codec": "PCMU", "payload_type": 0, "clock_rate": 8000, "duration_s": 1, "srtp": 1},
     "'srtp' must be bool"),
    ({"codec": "PCMU", "payload_type": 0, "clock_rate": 8000, "duration_s": 1,
      "rx": {"packets": True}}, "media stats rx: 'packets' must be int"),
    ({"codec": "PCMU", "payload_type": 0, "clock_rate": 8000, "duration_s": 1, "rx": [1]},
     "media stats rx: expected an object"),
    ([], "expected an object, got list"),
])
def test_from_dict_refuses_bad_records_naming_the_key(data: object, message: str) -> None:
    with pytest.raises(MediaStatsError) as info:
        MediaStats.from_dict(data)  # type: ignore[arg-type]
    assert message in str(info.value)


def test_optional_keys_may_be_null() -> None:
    data = sample(rtt_ms=None, remote_rtp=None).to_dict()
    assert MediaStats.from_dict(data).rtt_ms is None


def test_loss_percent_counts_discards_and_burst_ratio_needs_runs() -> None:
    d = Direction(packets=90, loss=10, discard=5)
    assert d.expected == 100 and d.loss_percent == pytest.approx(15.0)
    assert d.burst_ratio is None
    assert Direction(packets=900, loss=100, loss_bursts=20).burst_ratio == pytest.approx(4.5)
    assert Direction().loss_percent == 0


def test_loss_and_bursts_lower_the_direction_mos() -> None:
    clean = sample().mos("rx")
    random10 = sample(rx=Direction(packets=900, loss=100, loss_bursts=90)).mos("rx")
    bursty10 = sample(rx=Direction(packets=900, loss=100, loss_bursts=20)).mos("rx")
    assert clean is not None and random10 is not None and bursty10 is not None
    assert clean.mos >= 4.2
    assert random10.mos < 3.6
    assert bursty10.mos < random10.mos
    assert random10.burst_ratio == pytest.approx(1.0)


def test_delay_uses_jitter_buffer_or_twice_the_jitter() -> None:
    stats = sample(rtt_ms=100)
    assert stats.delay_ms("rx") == pytest.approx(50 + 40 + 20)
    assert stats.delay_ms("tx") == pytest.approx(50 + 0.8 + 20)
    assert sample(codec="G729", rtt_ms=None).delay_ms("rx") == pytest.approx(40 + 20 + 5)


def test_table_shows_both_directions_of_each_call() -> None:
    table = format_table({
        "bob c1": sample(srtp=True, crypto_suite="AES_CM_128_HMAC_SHA1_80"),
        "alice c2": sample(rx=Direction(), remote_rtp=None),
        "carol c3": None,
    })
    lines = table.splitlines()
    assert lines[0].split()[:6] == ["call", "dir", "codec", "pkts", "lost", "loss%"]
    assert len(lines) == 1 + 2 + 2 + 1
    assert "PCMU/8000" in lines[1] and "AES_CM_128_HMAC_SHA1_80" in lines[1]
    assert "127.0.0.1:4002" in lines[1]
    assert lines[2].split()[:2] == ["tx", "100"]
    alice_rx = lines[3].split()
    assert alice_rx[:5] == ["alice", "c2", "rx", "PCMU/8000", "0"] and "-" in alice_rx
    assert "no media session" in lines[5]


def test_media_package_imports_no_pytest_pjsua2_or_engine() -> None:
    import subprocess
    import sys

    code = ("import sys, pytest_sipflow.media.emodel, pytest_sipflow.media.stats, "
            "pytest_sipflow.media.checks, pytest_sipflow.media.audio; "
            "print([m for m in ('pytest', 'pjsua2', 'pytest_sipflow.engine', "
            "'pytest_sipflow.agent', 'pytest_sipflow.schema', 'numpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"
