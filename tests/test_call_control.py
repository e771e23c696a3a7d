"""Issue 3: full call control (hold, transfer, DTMF, audio, several calls per instance).

The scenario files live in ``scenarios/call-control/`` and run as ordinary items of the
suite. This module checks what a passing scenario cannot show by itself: that a node with a
wrong callId fails *alone* (engine runs, reading the result), the failure texts users see
(pytester runs), the committed WAV, and that the whole directory passes three runs in a row
with no scenario taking 3 s.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from conftest import REPO, own_pool
from pytest_sipflow.format import graph
from pytest_sipflow.engine.events import ActionLogEvent
from pytest_sipflow.engine.result import ScenarioResult
from pytest_sipflow.engine.runner import run_scenario
from pytest_sipflow.agent.pool import AgentPool
from pytest_sipflow.reporting.failure import render_failure

DIR = REPO / "scenarios" / "call-control"
FILES = sorted(DIR.glob("*.sipflow.json"))
WAV = DIR / "tone-200ms.wav"
WAV_SCRIPT = DIR / "make_tone_wav.py"


@pytest.fixture(scope="module")
def pool() -> Iterator[AgentPool]:
    yield from own_pool(11000, 6, "cc")


Runner = Callable[[str], ScenarioResult]


@pytest.fixture(scope="module")
def run(pool: AgentPool) -> Runner:
    """Runs a file of the directory (by its stem) through the engine, once per module."""
    cache: dict[str, ScenarioResult] = {}

    def get(stem: str) -> ScenarioResult:
        if stem not in cache:
            cache[stem] = run_scenario(graph.load(DIR / f"{stem}.sipflow.json"), pool)
        return cache[stem]

    return get


def sent_during(result: ScenarioResult, node_id: str) -> list[str]:
    """Start lines of the SIP messages an instance sent while ``node_id`` was its node."""
    return [e.message[3:] for e in result.events
            if isinstance(e, ActionLogEvent) and e.level == "sip" and e.node_id == node_id
            and e.message.startswith("->")]


def body(message: dict[str, Any]) -> str:
    return str(message["text"]).replace("\r", "").split("\n\n", 1)[-1]


def sip_of(result: ScenarioResult, instance: str) -> list[dict[str, Any]]:
    return [m for m in result.sip_messages if m["instance"] == instance]


# -- the files -------------------------------------------------------------------------------


def test_every_acceptance_item_has_an_editor_style_file() -> None:
    names = [p.name for p in FILES]
    for prefix in ("core-01-", "core-02a-", "core-02b-", "core-03-", "core-04-", "core-05-",
                   "neg-01-", "neg-02-", "neg-03-", "neg-04-", "neg-05-", "neg-06-", "neg-07-",
                   "dtmf-", "play-audio"):
        assert any(n.startswith(prefix) for n in names), (prefix, names)
    for path in FILES:
        doc = json.loads(path.read_text())
        assert all("position" in n for n in doc["nodes"]), path.name
        assert all(e.get("id") and e.get("sourceHandle") in ("success", "failure")
                   for e in doc["edges"]), path.name
        graph.load(path)  # and each one is a valid scenario


def test_committed_wav_is_what_the_script_makes(tmp_path: Path) -> None:
    out = tmp_path / "tone.wav"
    subprocess.run([sys.executable, str(WAV_SCRIPT), str(out)], check=True, capture_output=True)
    assert out.read_bytes() == WAV.read_bytes()
    assert WAV.stat().st_size < 5 * 1024
    with wave.open(str(WAV)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        assert w.getnframes() == 1600  # 200 ms


# -- NEG: a wrong key fails its own node and nothing else ------------------------------------

# file -> (the failing node, the wrong callId, nodes on the good call(s) after it,
#          the SIP request the failing node must not have sent)
NEG = {
    "neg-01-hold-wrong-callid": (
        "alice-holds-wrong-call", "to-dave",
        ["alice-holds-bob", "bob-is-held", "alice-retrieves-bob", "bob-is-retrieved",
         "alice-dtmf-carol", "carol-gets-3"], "INVITE"),
    "neg-02-retrieve-wrong-callid": (
        "alice-retrieves-wrong-call", "to-carol",
        ["alice-retrieves-bob", "bob-is-retrieved", "bob-sends-1", "alice-gets-1"], "INVITE"),
    "neg-03-release-wrong-callid": (
        "alice-releases-wrong-call", "from-alice",
        ["alice-dtmf-bob", "bob-gets-1", "alice-dtmf-carol", "carol-gets-2",
         "alice-sees-bob-bye", "alice-sees-carol-bye"], "BYE"),
    "neg-04-blind-transfer-wrong-callid": (
        "alice-transfers-wrong-call", "to-bobby",
        ["alice-dtmf-bob", "bob-gets-4", "bob-hangs-up", "alice-sees-bye"], "REFER"),
    "neg-05-mute-transfer-wrong-callid": (
        "alice-transfers-wrong-call", "consultation",
        ["alice-dtmf-bob", "bob-gets-5", "alice-dtmf-carol", "carol-gets-6"], "REFER"),
    "neg-06-held-on-other-callid": (
        "bob-held-on-second", "second",
        ["bob-held-on-first", "bob-gets-8-on-second", "bob-hangs-up-second",
         "alice-sees-line-2-end", "bob-sees-first-end"], None),
    "neg-07-dtmf-on-other-callid": (
        "bob-dtmf-on-second", "second",
        ["bob-dtmf-on-first", "bob-dtmf-second", "alice-gets-0-on-line-2", "alice-dtmf-line-2",
         "bob-gets-7-on-second", "alice-sees-line-1-end", "bob-sees-second-end"], None),
}


@pytest.mark.parametrize("stem", sorted(NEG))
def test_wrong_callid_fails_only_its_node(run: Runner, stem: str) -> None:
    bad, key, good, method = NEG[stem]
    result = run(stem)
    assert result.state == "completed", render_failure(result)  # failure branch taken
    node = result.nodes[bad]
    assert node.state == "failed"
    assert f"callId {key!r}" in node.message, node.message
    assert [n for n in good if result.nodes[n].state != "completed"] == []
    others = {n: s for n, s in result.node_states().items() if n != bad}
    assert set(others.values()) == {"completed"}, others
    if method is not None:  # a command: it sent nothing of its own
        assert not [s for s in sent_during(result, bad) if s.startswith(method)], \
            sent_during(result, bad)
    else:  # an event wait: it timed out, and left the other call's event in its queue
        assert "within 500 ms" in node.message, node.message
        late = result.nodes[good[0]]
        assert late.duration is not None and late.duration < 0.4, \
            "the event was already queued: not another 500 ms wait"
    if method == "REFER":
        assert not [m for m in result.sip_messages if m["summary"].startswith("REFER")]
    if stem.startswith("neg-04"):
        assert sip_of(result, "carol") == [], "Carol was never called"


# -- CORE: what the passing files cannot show on their own ----------------------------------


def test_blind_transfer_reaches_carol_as_a_call_from_bob(run: Runner) -> None:
    result = run("core-04-blind-transfer")
    assert result.state == "completed", render_failure(result)
    assert "<sip:200@127.0.0.1>" in result.nodes["carol-rings"].message  # Bob followed the REFER
    assert result.nodes["bob-is-transferred"].message.startswith("transferred to sip:300@")
    invites = [m for m in sip_of(result, "bob") if m["summary"].startswith("INVITE sip:300@")]
    assert invites and all(m["dir"] == "tx" for m in invites)


def test_attended_transfer_releases_alice_legs_after_the_final_notify(run: Runner) -> None:
    result = run("core-05-attended-transfer")
    assert result.state == "completed", render_failure(result)
    assert result.nodes["alice-joins-them"].message.endswith("both legs released")
    alice = sip_of(result, "alice")
    refer = next(i for i, m in enumerate(alice) if m["summary"].startswith("REFER sip:200@"))
    assert "Replaces=" in alice[refer]["text"]
    final = max(i for i, m in enumerate(alice) if m["summary"].startswith("NOTIFY")
                and body(m).startswith("SIP/2.0 200"))
    byes = [(i, m) for i, m in enumerate(alice) if m["summary"].startswith("BYE")]
    # Carol ends the replaced consult leg; Alice ends the primary only after the final NOTIFY.
    assert [m["dir"] for _, m in byes] == ["rx", "tx"], [(i, m["summary"]) for i, m in byes]
    assert byes[1][0] > final > refer
    assert byes[1][1]["summary"].startswith("BYE sip:200@")
    # Bob and Carol talk on their taken-over keys: Bob's 7 arrives on Carol's 'consult'.
    assert result.nodes["carol-hears-bob"].message == "received DTMF '7'"


def test_editor_form_blind_transfer_and_notify_without_code(pool: AgentPool) -> None:
    # As the editor writes a blind transfer: targetUser + the PBX's targetHost. With no
    # registrar (local mode) the user is a dn of the scenario and reaches that instance.
    # A NOTIFY node with no statusCode waits for a real NOTIFY, not for the REFER's 202.
    doc = json.loads((DIR / "core-04-blind-transfer.sipflow.json").read_text())
    nodes = {n["id"]: n for n in doc["nodes"]}
    xfer = nodes["alice-transfers-bob"]["data"]
    del xfer["targetUri"]
    xfer.update(targetUser="300", targetHost="pbx.example.invalid")
    doc["nodes"].append({"id": "alice-gets-a-notify", "type": "event", "position": {"x": 0, "y": 0},
                         "data": {"event": "NOTIFY", "sipInstanceId": "alice", "callId": "call",
                                  "timeout": 3000}})
    edge = next(e for e in doc["edges"] if e["source"] == "alice-transfers-bob")
    edge["target"] = "alice-gets-a-notify"
    doc["edges"].append({"id": "e-any", "source": "alice-gets-a-notify",
                         "target": "alice-gets-notify-200", "sourceHandle": "success"})
    result = run_scenario(graph.from_value(doc, DIR / "editor-form.sipflow.json"), pool)
    assert result.state == "completed", render_failure(result)
    assert result.nodes["alice-transfers-bob"].message.startswith(
        "call 'call' transferred to sip:300@127.0.0.1:")
    assert result.nodes["alice-gets-a-notify"].message == "NOTIFY 100 Trying"
    assert result.nodes["alice-gets-notify-200"].message == "NOTIFY 200 OK"


def test_dtmf_went_by_rfc2833_then_by_one_sip_info(run: Runner) -> None:
    result = run("dtmf-rfc2833-and-info")
    assert result.state == "completed", render_failure(result)
    infos = [m["text"] for m in sip_of(result, "bob")
             if m["dir"] == "rx" and m["summary"].startswith("INFO ")]
    assert len(infos) == 1, "123# went as RTP events, only the 9 as SIP INFO"
    assert "application/dtmf-relay" in infos[0] and "Signal=9" in infos[0].replace(" ", "")
    assert result.nodes["bob-gets-123#"].message == "received DTMF '123#'"
    assert result.nodes["bob-gets-9"].message == "received DTMF '9'"


def test_play_audio_plays_the_file_to_its_end(run: Runner) -> None:
    result = run("play-audio")
    assert result.state == "completed", render_failure(result)
    play = result.nodes["alice-plays-tone"]
    assert play.message == "played tone-200ms.wav"
    assert play.duration is not None and play.duration >= 0.18


# -- failure texts users see -----------------------------------------------------------------


def test_wrong_expected_digit_fails_with_expected_and_actual(
        sipflow_pytester: pytest.Pytester) -> None:
    doc = json.loads((DIR / "dtmf-rfc2833-and-info.sipflow.json").read_text())
    data = {n["id"]: n["data"] for n in doc["nodes"]}
    data["bob-gets-123#"]["expectedDigits"] = "124#"
    doc["name"] = "wrong sequence"
    sequence = json.dumps(doc)
    data["bob-gets-123#"]["expectedDigits"] = "123#"
    data["bob-gets-9"]["expectedDigit"] = "8"
    doc["name"] = "wrong info digit"
    single = json.dumps(doc)
    sipflow_pytester.makefile(".sipflow.json", sequence=sequence, single=single)
    result = sipflow_pytester.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*scenario 'wrong sequence' failed",
        "*failing node: 'bob-gets-123#' (instance 'bob', DTMFReceived)",
        "*reason: wrong DTMF digit '3' at position 3",
        "*expected: 124#",
        "*actual:   123",
        "*scenario 'wrong info digit' failed",
        "*failing node: 'bob-gets-9' (instance 'bob', DTMFReceived)",
        "*reason: wrong DTMF digit '9' at position 1",
        "*expected: 8",
        "*actual:   9",
    ])


def test_missing_wav_fails_the_node_naming_the_path(sipflow_pytester: pytest.Pytester) -> None:
    text = (DIR / "play-audio.sipflow.json").read_text()
    sipflow_pytester.makefile(".sipflow.json", **{"play-audio": text})  # no WAV beside it
    missing = (sipflow_pytester.path / "tone-200ms.wav").resolve()
    result = sipflow_pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*failing node: 'alice-plays-tone' (instance 'alice', PlayAudio)",
        f"*reason: cannot play {missing}: No such file or directory",
        "*expected: a readable WAV file",
        f"*actual:   {missing}",
    ])


# -- three runs in a row, none slow ----------------------------------------------------------

RECORDER = """
    import json
    SEEN = {}
    def pytest_runtest_logreport(report):
        if report.when == "call":
            SEEN.setdefault(report.nodeid, {}).update(outcome=report.outcome, call=report.duration)
    def pytest_runtest_teardown(item):
        result = getattr(item, "result", None)
        if result is not None:
            SEEN.setdefault(item.nodeid, {})["scenario"] = result.duration
    def pytest_sessionfinish(session):
        with open("durations.json", "w") as f:
            json.dump(SEEN, f)
"""


def test_directory_passes_three_runs_in_a_row(
        sipflow_pytester: pytest.Pytester) -> None:
    for i in (1, 2, 3):
        shutil.copytree(DIR, sipflow_pytester.path / f"run{i}",
                        ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    sipflow_pytester.makeconftest(RECORDER)
    result = sipflow_pytester.runpytest_subprocess("-p", "no:cacheprovider", "--durations=0")
    result.assert_outcomes(passed=3 * len(FILES))
    seen = json.loads((sipflow_pytester.path / "durations.json").read_text())
    assert len(seen) == 3 * len(FILES)
    runs = [k.split("/")[0] for k in seen]  # in order: all of run1, then run2, then run3
    assert runs == sorted(runs) and {r: runs.count(r) for r in runs} == dict.fromkeys(
        ("run1", "run2", "run3"), len(FILES))
    assert all(v["outcome"] == "passed" for v in seen.values())
    for path in FILES:  # the --durations=0 table lists every item of every run
        for i in (1, 2, 3):
            result.stdout.fnmatch_lines([f"*s call *run{i}/{path.name}::*"])
