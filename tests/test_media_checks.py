"""``expectMedia``: impossible or unknown keys are refused; each failure names the
direction and says expected vs actual; a healthy call passes every key."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from pytest_sipflow.media.checks import ExpectMedia, evaluate
from pytest_sipflow.media.stats import Direction, MediaStats

ALL_KEYS = {"received": True, "sent": True, "minPackets": 50, "maxLossPercent": 1,
            "maxJitterMs": 20, "minMos": 4.0, "codec": "PCMU", "srtp": False}


def call(**changes: Any) -> MediaStats:
    base: dict[str, Any] = dict(
        codec="PCMU", payload_type=0, clock_rate=8000, duration_s=2.0,
        rx=Direction(packets=100, bytes=16000, jitter_mean_ms=0.5, jitter_max_ms=1.5,
                     loss_bursts=0, jitter_buffer_ms=40),
        tx=Direction(packets=100, bytes=16000), rtt_ms=0.3, remote_rtp="127.0.0.1:4002")
    base.update(changes)
    return MediaStats(**base)


def check(keys: dict[str, Any], stats: MediaStats | None) -> list[str]:
    return evaluate(ExpectMedia.model_validate(keys), stats, me="bob", peer="alice")


def test_a_healthy_call_passes_every_key() -> None:
    assert check(ALL_KEYS, call()) == []


def test_known_keys_are_the_documented_camel_case_names() -> None:
    assert ExpectMedia.known_keys() == list(ALL_KEYS)


def test_snake_case_names_are_accepted_too() -> None:
    assert ExpectMedia.model_validate({"min_packets": 3}).min_packets == 3


@pytest.mark.parametrize(("keys", "message"), [
    ({"recieved": True}, "recieved"),
    ({"minMos": 6}, "less than or equal to 5"),
    ({"minMos": 0.5}, "greater than or equal to 1"),
    ({"minMos": 4.8}, "tops out at 4.5"),
    ({"maxLossPercent": 101}, "less than or equal to 100"),
    ({"maxLossPercent": -1}, "greater than or equal to 0"),
    ({"maxJitterMs": -5}, "greater than or equal to 0"),
    ({"maxLossPercent": True}, "valid number"),
    ({"minMos": "4"}, "valid number"),
    ({"minPackets": -1}, "greater than or equal to 0"),
    ({"minPackets": "5"}, "valid integer"),
    ({"minPackets": True}, "valid integer"),
    ({"received": "yes"}, "valid boolean"),
    ({"srtp": 1}, "valid boolean"),
    ({"codec": ""}, "at least 1 character"),
    ({"codec": "PCMU 8000"}, "should match pattern"),
    ({}, "expectMedia is empty"),
    ({"received": False, "minMos": 3}, "received: false but also sets ['minMos']"),
])
def test_impossible_or_unknown_keys_are_refused(keys: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        ExpectMedia.model_validate(keys)
    assert message in str(info.value)


def test_one_way_audio_names_the_silent_direction() -> None:
    stats = call(rx=Direction())
    assert check({"received": True}, stats) == [
        "bob received 0 RTP packets from alice in 2.0 s — one-way audio (expected ≥ 1)"]
    assert check({"received": True, "minMos": 4}, stats) == [
        "bob received 0 RTP packets from alice in 2.0 s — one-way audio (expected ≥ 1)"]


def test_no_audio_at_all_and_too_few_packets() -> None:
    silent = call(rx=Direction(), tx=Direction())
    assert check({"received": True, "sent": True}, silent) == [
        "bob received 0 RTP packets from alice in 2.0 s — no audio either way (expected ≥ 1)",
        "bob sent 0 RTP packets to alice in 2.0 s — alice cannot hear bob (expected ≥ 1)",
    ]
    assert check({"minPackets": 150}, call()) == [
        "bob received 100 RTP packets from alice in 2.0 s (expected ≥ 150)"]
    assert check({"received": True, "minPackets": 0}, call(rx=Direction())) != []


def test_held_call_expects_no_media() -> None:
    assert check({"received": False, "sent": False}, call(rx=Direction(), tx=Direction())) == []
    assert check({"received": False, "sent": False}, call()) == [
        "bob received 100 RTP packets from alice in 2.0 s (expected none)",
        "bob sent 100 RTP packets to alice in 2.0 s (expected none)",
    ]


def test_loss_jitter_and_mos_failures_say_expected_and_actual() -> None:
    lossy = call(rx=Direction(packets=900, loss=80, discard=20, loss_bursts=20,
                              jitter_mean_ms=12, jitter_max_ms=45.25))
    failures = check({"maxLossPercent": 5, "maxJitterMs": 30, "minMos": 4}, lossy)
    assert failures[0] == ("alice → bob: 10.2 % of RTP packets lost or discarded (100 of 980) "
                           "(expected ≤ 5 %)")
    assert failures[1] == "alice → bob: jitter up to 45.2 ms (mean 12.0 ms) (expected ≤ 30 ms)"
    assert failures[2].startswith("alice → bob: MOS ")
    assert "burst ratio 3.67 measured" in failures[2] and failures[2].endswith("(expected ≥ 4)")
    assert len(failures) == 3


def test_mos_failure_says_when_the_burst_ratio_was_assumed() -> None:
    lossy = call(rx=Direction(packets=900, loss=100))
    (failure,) = check({"minMos": 4}, lossy)
    assert "burst ratio 1.00 assumed" in failure


def test_codec_by_name_or_name_and_rate() -> None:
    assert check({"codec": "pcmu"}, call()) == []
    assert check({"codec": "PCMU/8000"}, call()) == []
    assert check({"codec": "PCMA"}, call()) == [
        "bob ↔ alice: codec PCMU/8000 (payload type 0) (expected PCMA)"]
    assert check({"codec": "PCMU/16000"}, call()) != []


def test_srtp_both_ways() -> None:
    plain, secure = call(), call(srtp=True, crypto_suite="AES_CM_128_HMAC_SHA1_80")
    assert check({"srtp": True}, secure) == [] and check({"srtp": False}, plain) == []
    assert check({"srtp": True}, plain) == [
        "bob ↔ alice: media is plain RTP, not encrypted (expected SRTP)"]
    assert check({"srtp": False}, secure) == [
        "bob ↔ alice: media is SRTP (AES_CM_128_HMAC_SHA1_80) (expected plain RTP)"]


def test_no_media_session_at_all() -> None:
    (failure,) = check({"received": True}, None)
    assert failure.startswith("bob has no media session with alice")
    assert "'received': True" in failure


def test_failure_examples_in_the_docs_are_what_evaluate_says() -> None:
    import re
    from pathlib import Path

    page = (Path(__file__).parents[1] / "docs" / "media.md").read_text()
    block = re.search(r"says expected vs actual:\n\n```\n(.*?)```", page, flags=re.S)
    assert block is not None
    produced = set(
        check({"received": True}, call(rx=Direction()))
        + check({"sent": True}, call(tx=Direction()))
        + check({"maxLossPercent": 5, "maxJitterMs": 30, "minMos": 4},
                call(rx=Direction(packets=900, loss=80, discard=20, loss_bursts=20,
                                  jitter_mean_ms=12, jitter_max_ms=45.25)))
        + check({"codec": "PCMA", "srtp": True}, call()))
    lines = block.group(1).strip().splitlines()
    assert len(lines) == 7
    assert [line for line in lines if line not in produced] == []
