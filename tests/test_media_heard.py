"""What each side heard (issue 15 items 4, 5): recordings of the received audio checked for a
tone, silence and in-band DTMF between two real agents, and RTP in the pcap.

Every audio fact is produced by A's agent and found in B's recording; the must-fail cases
prove the checks can fail.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import basic_call, chain, command, event, instance, own_pool, scenario
from pytest_sipflow.agent.pool import AgentPool
from pytest_sipflow.engine.result import ScenarioResult
from pytest_sipflow.engine.runner import run_scenario
from pytest_sipflow.errors import ScenarioFormatError
from pytest_sipflow.format import graph
from pytest_sipflow.media import audio as audio_mod
from pytest_sipflow.media.audio import Audio, read_wav, write_tone_wav
from pytest_sipflow.media.heard import (heard_digits, loudest_tone, read_growing_wav,
                                        silence_verdict, tone_verdict)


@pytest.fixture(scope="module")
def pool() -> Iterator[AgentPool]:
    # The plan of test_checks_scenarios (area 7): agents on one SIP plan never share RTP ports.
    yield from own_pool(13000, 7, "heard")


def run(tmp_path: Path, pool: AgentPool, a_steps: list[dict[str, Any]],
        b_steps: list[dict[str, Any]], codecs: list[str] | None = None) -> ScenarioResult:
    """A calls B (callId c); A then runs ``a_steps`` and hangs up; B answers, runs ``b_steps``."""
    extra = {"codecs": codecs} if codecs else {}
    a = [command("call", "MakeCall", "a", callId="c", targetUri="200"),
         event("ready", "TIMEOUT", "a", timeout=300), *a_steps,
         command("bye", "Release", "a", callId="c")]
    b = [event("in", "INCOMING", "b", callId="c", timeout=5000),
         command("answer", "Answer", "b", callId="c"), *b_steps]
    nodes = [instance("a", "100", **extra), instance("b", "200", **extra), *a, *b]
    text = scenario(nodes, chain("a", *[n["id"] for n in a]) + chain("b", *[n["id"] for n in b]),
                    timeout=20000)
    path = tmp_path / "heard.sipflow.json"
    path.write_text(text)
    return run_scenario(graph.load(path), pool)


def record_then_check(**checks: Any) -> list[dict[str, Any]]:
    return [command("rec", "RecordAudio", "b", callId="c", filePath="b-heard.wav"),
            event("gone", "DISCONNECTED", "b", callId="c", timeout=8000),
            command("judge", "RecordAudio", "b", callId="c", action="stop", **checks)]


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_a_tone_played_by_a_is_heard_in_bs_recording(tmp_path: Path, pool: AgentPool,
                                                     codec: str) -> None:
    write_tone_wav(tmp_path / "tone.wav", 1000, 1000)
    result = run(tmp_path, pool, [command("play", "PlayAudio", "a", callId="c",
                                          filePath="tone.wav")],
                 record_then_check(expectTone={"hz": 1000, "minMs": 500}), codecs=[codec])
    assert result.passed, result.failure
    assert "heard as expected" in result.nodes["judge"].message
    wav = tmp_path / "b-heard.wav"
    assert result.recordings == [{"instance": "b", "callId": "c", "path": str(wav),
                                  "node": "rec"}]
    audio = read_wav(wav)
    assert audio.rate == 16000 and audio.duration_ms > 900


def test_silence_is_not_taken_for_a_tone(tmp_path: Path, pool: AgentPool) -> None:
    result = run(tmp_path, pool, [event("quiet", "TIMEOUT", "a", timeout=800)],
                 record_then_check(expectTone={"hz": 1000, "minMs": 500}))
    assert not result.passed
    failure = result.failure
    assert failure is not None and failure.node == "judge"
    assert failure.reason.startswith("b heard no 1000 Hz tone ≥ 500 ms (longest 0 ms; "
                                     "no tone heard at all; level digital silence")
    assert failure.expected == "a 1000 Hz tone ≥ 500 ms"
    assert f"recording: {tmp_path / 'b-heard.wav'}" in failure.detail


def test_expect_silence_passes_on_silence_and_fails_on_a_tone(tmp_path: Path,
                                                             pool: AgentPool) -> None:
    quiet = run(tmp_path, pool, [event("quiet", "TIMEOUT", "a", timeout=600)],
                record_then_check(expectSilence=True))
    assert quiet.passed, quiet.failure
    write_tone_wav(tmp_path / "tone.wav", 440, 600)
    loud = run(tmp_path, pool, [command("play", "PlayAudio", "a", callId="c",
                                        filePath="tone.wav")],
               record_then_check(expectSilence={"maxDbfs": -40}))
    assert loud.failure is not None
    assert loud.failure.reason.startswith("b heard sound at ")
    assert "expected silence below -40 dBFS; loudest tone 440 Hz" in loud.failure.reason


def test_inband_dtmf_sent_by_a_is_heard_by_b(tmp_path: Path, pool: AgentPool) -> None:
    result = run(tmp_path, pool,
                 [command("dtmf", "SendDTMF", "a", callId="c", digits="123#", method="inband")],
                 [event("digits", "DTMFReceived", "b", callId="c", method="inband",
                        expectedDigits="123#", timeout=5000)])
    assert result.passed, result.failure
    assert result.nodes["digits"].message == "heard in-band DTMF '123#'"
    assert [r["node"] for r in result.recordings] == ["digits"]  # its own capture


def test_a_wrong_inband_digit_fails_with_what_was_heard(tmp_path: Path,
                                                       pool: AgentPool) -> None:
    result = run(tmp_path, pool,
                 [command("dtmf", "SendDTMF", "a", callId="c", digits="123", method="inband")],
                 [event("digits", "DTMFReceived", "b", callId="c", method="inband",
                        expectedDigits="124", timeout=5000)])
    failure = result.failure
    assert failure is not None and failure.node == "digits"
    assert failure.reason == "wrong in-band DTMF digit '3' at position 3"
    assert (failure.expected, failure.actual) == ("124", "123")


def test_rfc2833_digits_are_not_taken_for_inband_ones(tmp_path: Path, pool: AgentPool) -> None:
    result = run(tmp_path, pool,
                 [command("dtmf", "SendDTMF", "a", callId="c", digits="12")],
                 [event("digits", "DTMFReceived", "b", callId="c", method="inband",
                        expectedDigits="12", timeout=1500)])
    assert result.failure is not None
    assert result.failure.reason.startswith("no in-band DTMF on callId 'c' ")
    assert result.failure.actual == "no digit heard"


# --- collection refusals (no agents) ---------------------------------------------------------


@pytest.mark.parametrize(("data", "field", "words"), [
    ({"action": "stop", "expectTone": {"hz": 0}}, "data.expectTone.hz", "greater than 0"),
    ({"action": "stop", "expectTone": {"hz": 1000, "minMs": -1}}, "data.expectTone.minMs",
     "greater than or equal to 0"),
    ({"action": "stop", "expectTone": {"hz": 1000, "minMS": 5}}, "data.expectTone.minMS",
     "not permitted"),
    ({"action": "stop", "expectSilence": {"maxDbfs": 3}}, "data.expectSilence", "less than"),
    ({"action": "start", "expectTone": {"hz": 1000}}, "expectTone", "action"),
    ({"action": "pause"}, "data.action", "'start' or 'stop'"),
    ({"action": "start", "expectTon": {"hz": 1000}}, "data.expectTon", "did you mean 'expectTone'"),
    ({"action": "stop", "expectSilence": "yes"}, "data.expectSilence", "bool"),
    ({"filePath": "heard.mp3"}, "filePath", ".wav"),
])
def test_bad_recording_checks_are_refused_at_collection(tmp_path: Path, data: dict[str, Any],
                                                        field: str, words: str) -> None:
    nodes = [instance("b", "200"), command("rec", "RecordAudio", "b", **data)]
    path = tmp_path / "bad.sipflow.json"
    path.write_text(scenario(nodes, chain("b", "rec")))
    with pytest.raises(ScenarioFormatError) as info:
        graph.load(path)
    text = str(info.value)
    assert "bad.sipflow.json" in text and "rec" in text and field in text, text
    assert words in text, text


@pytest.mark.parametrize(("data", "field", "words"), [
    ({"event": "DTMFReceived", "method": "inband", "absent": True}, "absent", "inband"),
    ({"event": "DTMFReceived", "method": "tones"}, "data.method", "'inband'"),
    ({"command": "SendDTMF", "digits": "1", "method": "inband", "intervalMs": 20},
     "intervalMs", "40 ms"),
])
def test_bad_inband_dtmf_is_refused_at_collection(tmp_path: Path, data: dict[str, Any],
                                                  field: str, words: str) -> None:
    node = {"id": "n", "type": "event" if "event" in data else "command",
            "data": {**data, "sipInstanceId": "b"}}
    path = tmp_path / "bad.sipflow.json"
    path.write_text(scenario([instance("b", "200"), node], chain("b", "n")))
    with pytest.raises(ScenarioFormatError) as info:
        graph.load(path)
    text = str(info.value)
    assert field in text and words in text, text


def test_verdicts_say_what_was_heard() -> None:
    tone = Audio(audio_mod.tone(440, 600, 16000), 16000)
    assert tone_verdict(tone, 440, 500, "bob") is None
    assert tone_verdict(tone, 1000, 500, "bob") == (
        "bob heard no 1000 Hz tone ≥ 500 ms (longest 0 ms; loudest tone heard 440 Hz; "
        "level -13 dBFS)")
    quiet = Audio(audio_mod.silence(600, 16000), 16000)
    assert silence_verdict(quiet, -50, True, "bob") is None
    assert silence_verdict(quiet, -50, False, "bob") == (
        "bob heard silence at digital silence (expected sound at -50 dBFS or more)")
    assert silence_verdict(tone, -50, False, "bob") is None
    assert loudest_tone(Audio(audio_mod.dtmf("5", 300, 10, 16000), 16000)) is None
    assert heard_digits(Audio(audio_mod.dtmf("123#", rate=16000), 16000)) == "123#"
    assert heard_digits(Audio(audio_mod.dtmf("9*", rate=8000), 8000)) == "9*"


def test_a_growing_recording_is_read_before_its_header_has_sizes(tmp_path: Path) -> None:
    done = write_tone_wav(tmp_path / "t.wav", 1000, 200, rate=16000)
    raw = bytearray(done.read_bytes())
    raw[4:8] = raw[40:44] = b"\0\0\0\0"  # as pjmedia's writer leaves them until it closes
    (tmp_path / "growing.wav").write_bytes(bytes(raw[:-3]))
    audio = read_growing_wav(tmp_path / "growing.wav")
    assert audio.rate == 16000 and len(audio.samples) == (len(raw) - 44 - 3) // 2
    assert read_growing_wav(done).samples == read_wav(done).samples


# --- RTP in the pcap (--sipflow-pcap captures it from the wire) ------------------------------

TSHARK = shutil.which("tshark")
NO_RAW_SOCKET = """
import socket
from pytest_sipflow.reporting import capture


class _NoRawSockets:
    def __getattr__(self, name):
        return getattr(socket, name)

    def socket(self, *args):
        raise PermissionError(1, "Operation not permitted")


capture.socket = _NoRawSockets()
"""


def talking_call(pytester: pytest.Pytester, **instance_keys: Any) -> None:
    text = json.loads(basic_call())
    next(n for n in text["nodes"] if n["id"] == "talk")["data"]["timeout"] = 600
    for node in text["nodes"]:
        if node["type"] == "sipInstance":
            node["data"].update(instance_keys)
    (pytester.path / "talk.sipflow.json").write_text(json.dumps(text))


def rtp_streams(pcap: Path) -> set[tuple[str, str, str]]:
    """(ssrc, source port, destination port) of every RTP packet tshark decodes."""
    assert TSHARK is not None
    out = subprocess.run([TSHARK, "-r", str(pcap), "-Y", "rtp", "-T", "fields", "-e", "rtp.ssrc",
                          "-e", "udp.srcport", "-e", "udp.dstport"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return {tuple(line.split("\t")) for line in out.splitlines()}  # type: ignore[misc]


def test_the_pcap_holds_the_calls_rtp_in_both_directions(sipflow_pytester: pytest.Pytester) -> None:
    talking_call(sipflow_pytester)
    result = sipflow_pytester.runpytest_subprocess("--sipflow-pcap=out", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*RTP not captured*")
    pcap = next((sipflow_pytester.path / "out").glob("*.pcap"))
    streams = rtp_streams(pcap)
    ssrcs = {ssrc for ssrc, _, _ in streams}
    directions = {(src, dst) for _, src, dst in streams}
    assert len(ssrcs) == 2, streams
    assert len(directions) == 2 and {d[::-1] for d in directions} == directions, streams
    out = subprocess.run([TSHARK, "-r", str(pcap), "-Y", "rtcp || sip", "-T", "fields",
                          "-e", "frame.protocols"], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    assert "rtcp" in out and "sip" in out


def rtp_packets(pcap: Path) -> list[tuple[int, bytes]]:
    """(RTP payload length, payload) of every RTP packet tshark decodes."""
    assert TSHARK is not None
    out = subprocess.run([TSHARK, "-r", str(pcap), "-Y", "rtp", "-T", "fields",
                          "-e", "udp.length", "-e", "rtp.payload"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    return [(int(n) - 8 - 12, bytes.fromhex(p.replace(":", ""))) for n, p in rows]


@pytest.mark.parametrize("srtp", ["disabled", "mandatory"])
def test_srtp_leaves_no_plain_rtp_in_the_pcap(sipflow_pytester: pytest.Pytester,
                                              srtp: str) -> None:
    """Plain PCMU silence from the null sound device is 160 bytes of 0xFF per packet; with
    SDES-SRTP every packet's payload is ciphertext plus a 10-byte authentication tag."""
    talking_call(sipflow_pytester, srtp=srtp)
    result = sipflow_pytester.runpytest_subprocess("--sipflow-pcap=out", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    pcap = next((sipflow_pytester.path / "out").glob("*.pcap"))
    packets = rtp_packets(pcap)
    assert len({ssrc for ssrc, _, _ in rtp_streams(pcap)}) == 2 and len(packets) >= 20
    plain = [p for n, p in packets if n == 160 and p == b"\xff" * 160]
    if srtp == "disabled":
        assert len(plain) == len(packets), "the plain call's RTP is not the silence expected"
    else:
        assert plain == [] and {n for n, _ in packets} == {170}, {n for n, _ in packets}


def test_without_capture_rights_the_pcap_has_sip_and_a_warning_says_why(
        sipflow_pytester: pytest.Pytester) -> None:
    talking_call(sipflow_pytester)
    sipflow_pytester.makeconftest(NO_RAW_SOCKET)
    result = sipflow_pytester.runpytest_subprocess("--sipflow-pcap=out", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*sipflow: RTP not captured: no raw socket*CAP_NET_RAW*"
                                 "the pcap files hold SIP only*"])
    pcap = next((sipflow_pytester.path / "out").glob("*.pcap"))
    assert rtp_streams(pcap) == set()
    out = subprocess.run([TSHARK, "-r", str(pcap), "-Y", "sip", "-T", "fields", "-e",
                          "sip.Method"], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    assert "INVITE" in out.split()


def test_captured_frames_are_merged_with_sip_in_time_order(tmp_path: Path) -> None:
    import dpkt

    import sipflows
    from pytest_sipflow.reporting.capture import Frame, udp_ports
    from pytest_sipflow.reporting.pcap import write_pcap

    udp = dpkt.udp.UDP(sport=40000, dport=40020, data=b"\x80\x00" + bytes(170))
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(src=b"\x7f\0\0\1", dst=b"\x7f\0\0\1", p=17, data=udp)
    raw = bytes(dpkt.ethernet.Ethernet(src=bytes(6), dst=bytes(6), data=bytes(ip)))
    assert udp_ports(raw) == (40000, 40020)
    assert udp_ports(raw[:20]) is None
    records = sipflows.basic_call()
    middle = sorted(r["t"] for r in records)[3] + 0.0001
    count = write_pcap(records, tmp_path / "m.pcap", frames=[Frame(middle, raw, (40000, 40020))])
    with open(tmp_path / "m.pcap", "rb") as handle:
        times = [ts for ts, _ in dpkt.pcap.Reader(handle)]
    assert count == len(times) and times == sorted(times)
    assert round(middle, 6) in [round(t, 6) for t in times]


# --- the recording in the reports ------------------------------------------------------------


def test_a_failed_checks_recording_is_in_the_failure_json_and_html(
        sipflow_pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_html")
    import html as html_mod
    import re

    nodes = [instance("a", "100"), instance("b", "200"),
             command("call", "MakeCall", "a", callId="c", targetUri="200"),
             event("quiet", "TIMEOUT", "a", timeout=600),
             command("bye", "Release", "a", callId="c"),
             event("in", "INCOMING", "b", callId="c", timeout=5000),
             command("answer", "Answer", "b", callId="c"),
             *record_then_check(expectTone={"hz": 1000, "minMs": 500})]
    nodes[-3]["data"].pop("filePath")  # the default place: the item's temp folder
    edges = chain("a", "call", "quiet", "bye") + chain("b", "in", "answer", "rec", "gone", "judge")
    (sipflow_pytester.path / "deaf.sipflow.json").write_text(scenario(nodes, edges))
    result = sipflow_pytester.runpytest_subprocess(
        "--sipflow-json=out", "--html=report.html", "--self-contained-html",
        f"--basetemp={sipflow_pytester.path / 'tmp'}", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    wav = sipflow_pytester.path / "tmp" / "sipflow-audio" / "deaf.sipflow.json__deaf" / "b-c-rec.wav"
    result.stdout.fnmatch_lines([
        "*reason: b heard no 1000 Hz tone ≥ 500 ms (longest 0 ms; no tone heard at all*",
        f"*recording: {wav}"])
    assert read_wav(wav).duration_ms > 300
    doc = json.loads(next((sipflow_pytester.path / "out").glob("*.json")).read_text())
    assert doc["recordings"] == [{"instance": "b", "callId": "c", "path": str(wav),
                                  "node": "rec"}]
    page = (sipflow_pytester.path / "report.html").read_text()
    blob = re.search(r'data-jsonblob="(.*?)"', page, flags=re.S)
    assert blob
    tests = json.loads(html_mod.unescape(blob.group(1)))["tests"]
    fragments = [e["content"] for runs in tests.values() for run in runs
                 for e in run.get("extras", []) if e.get("format_type") == "html"]
    assert len(fragments) == 1
    assert '<audio controls preload="none" src="data:audio/wav;base64,UklGR' in fragments[0]
    assert f"b heard callId &#x27;c&#x27;: {wav}" in fragments[0]
