"""Pure parts of the media feature: SDP helpers, the MEDIA window, expectMedia at collection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_sipflow.core.media import _bare, window
from pytest_sipflow.errors import ScenarioFormatError
from pytest_sipflow.format import graph
from pytest_sipflow.media.stats import Direction, MediaStats
from pytest_sipflow.sip.message import sdp_crypto_suite, sdp_with_audio_port

SDP = ("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio 4000 RTP/SAVP 0 101\r\na=rtcp:4001 IN IP4 127.0.0.1\r\n"
       "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abcd\r\n"
       "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:efgh\r\n")


def test_crypto_suite_is_the_first_audio_crypto_line() -> None:
    assert sdp_crypto_suite(SDP) == "AES_CM_128_HMAC_SHA1_80"
    assert sdp_crypto_suite(SDP.replace("a=crypto", "a=x-crypto")) is None
    video_first = SDP.replace("m=audio 4000", "m=video 5000 RTP/SAVP 96\r\na=crypto:1 "
                              "F8_128_HMAC_SHA1_80 inline:z\r\nm=audio 4000")
    assert sdp_crypto_suite(video_first) == "AES_CM_128_HMAC_SHA1_80"


def test_audio_port_rewrite_touches_only_the_m_line() -> None:
    out = sdp_with_audio_port(SDP, 5555)
    assert "m=audio 5555 RTP/SAVP 0 101\r\n" in out and "a=rtcp:4001" in out
    assert out.replace("5555", "4000") == SDP


def _stats(rx: int, tx: int, loss: int, dur: float, bursts: int | None = 0) -> MediaStats:
    return MediaStats("PCMU", 0, 8000, dur, rx=Direction(rx, rx * 160, loss, loss_bursts=bursts,
                                                       jitter_max_ms=2.0),
                      tx=Direction(tx, tx * 160))


def test_window_is_what_flowed_between_two_samples() -> None:
    got = window(_stats(50, 50, 1, 1.0), _stats(50, 150, 3, 3.0, bursts=2))
    assert got is not None
    assert (got.rx.packets, got.rx.loss, got.tx.packets, got.duration_s) == (0, 2, 100, 2.0)
    assert got.rx.loss_bursts == 2 and got.rx.jitter_max_ms == 2.0
    assert window(None, _stats(5, 5, 0, 1.0)) == _stats(5, 5, 0, 1.0)
    unknown = window(_stats(5, 5, 0, 1.0, bursts=None), _stats(9, 9, 0, 2.0))
    assert unknown is not None and unknown.rx.loss_bursts is None


def test_peer_uris_compare_without_port() -> None:
    assert _bare("sip:100@127.0.0.1:5060") == _bare("sip:100@127.0.0.1") == "100@127.0.0.1"


def _file(tmp_path: Path, **media: object) -> Path:
    nodes = [{"id": "a", "type": "sipInstance", "data": {"dn": "100"}},
             {"id": "m", "type": "event", "data": {"event": "MEDIA", **media}}]
    path = tmp_path / "m.sipflow.json"
    path.write_text(json.dumps({"nodes": nodes, "edges": [{"source": "a", "target": "m"}]}))
    return path


@pytest.mark.parametrize("media, field, text", [
    ({"expectMedia": {"minPackts": 3}}, "data.expectMedia.minPackts", "did you mean 'minPackets'"),
    ({"expectMedia": {"minMos": 4.8}}, "data.expectMedia", "can never be met"),
    ({"expectMedia": {"maxLossPercent": 120}}, "data.expectMedia.maxLossPercent", "100"),
    ({"expectMedia": {}}, "data.expectMedia", "expectMedia is empty"),
    ({}, "data.expectMedia", "MEDIA needs expectMedia"),
    ({"expectMedia": {"received": True}, "absent": True}, "data.absent", "means nothing on MEDIA"),
])
def test_bad_expect_media_is_refused_at_collection(tmp_path: Path, media: dict, field: str,
                                                   text: str) -> None:
    with pytest.raises(ScenarioFormatError) as info:
        graph.load(_file(tmp_path, **media))
    problem = info.value.problems[0]
    assert (problem.node, problem.field) == ("m", field) and text in problem.message, problem


def test_packet_keys_on_connected_are_refused(tmp_path: Path) -> None:
    path = _file(tmp_path)
    doc = json.loads(path.read_text())
    doc["nodes"][1]["data"] = {"event": "CONNECTED", "expectMedia": {"codec": "PCMU",
                                                                     "minPackets": 10}}
    path.write_text(json.dumps(doc))
    with pytest.raises(ScenarioFormatError,
                       match=r"'data.expectMedia.minPackets'.*move \['minPackets'\] to a MEDIA"):
        graph.load(path)
