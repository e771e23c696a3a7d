"""Agent processes talking real SIP to each other over 127.0.0.1 (no mocks).

Ports: SIP 15060-15999, RTP 26000-27999 (reserved for these tests).
"""

from __future__ import annotations

import itertools
import math
import os
import socket
import struct
import threading
import time
import wave
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from conftest import SLOT, own_rtp_base
from pytest_sipflow.agent import Agent, AgentCrashed, AgentError

SIP_FIRST, SIP_LAST = 15100, 15998
RTP_PER_AGENT = 20

# Each agent gets its own SIP start port and RTP block; start retries upward on clashes.
# Each test process (a concurrent suite, an xdist worker) takes its slot's slice of both.
_SIP_BASE, _SIP_SLICE = SIP_FIRST + 180 * SLOT, 180
_RTP_BASE, _RTP_SLICE = own_rtp_base(11), 400
# Cycled: agents of earlier tests are closed, so their ports are free again.
_sip_ports = itertools.cycle(range(_SIP_BASE, _SIP_BASE + _SIP_SLICE, 6))
_rtp_ports = itertools.cycle(range(_RTP_BASE, _RTP_BASE + _RTP_SLICE - RTP_PER_AGENT + 1,
                                   RTP_PER_AGENT))


def _next_ports() -> tuple[int, int]:
    return next(_sip_ports), next(_rtp_ports)


class Events:
    """Thread-safe event log for one agent, with blocking waits."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.cond = threading.Condition()

    def __call__(self, event: dict[str, Any]) -> None:
        with self.cond:
            self.items.append(event)
            self.cond.notify_all()

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        with self.cond:
            return [e for e in self.items if e.get("event") == kind
                    and all(e.get(k) == v for k, v in match.items())]

    def wait(self, kind: str, timeout: float = 5.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for e in self.items:
                    if e.get("event") == kind and all(e.get(k) == v for k, v in match.items()):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(e["event"], e.get("call")) for e in self.items if e["event"] != "sip"]
                    raise AssertionError(f"no {kind} {match} within {timeout}s; saw {seen}")
                self.cond.wait(left)

    def wait_count(self, kind: str, count: int, timeout: float = 5.0, **match: Any
                   ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [e for e in self.items if e.get("event") == kind
                         and all(e.get(k) == v for k, v in match.items())]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"only {len(found)}/{count} {kind} {match} "
                                         f"within {timeout}s: {found}")
                self.cond.wait(left)


class UA:
    """An agent plus its events, started and configured."""

    def __init__(self, agent: Agent, events: Events, dn: str) -> None:
        self.agent = agent
        self.events = events
        self.dn = dn

    @property
    def uri(self) -> str:
        return f"sip:{self.dn}@127.0.0.1:{self.agent.sip_port}"

    def req(self, op: str, **args: Any) -> dict[str, Any]:
        return self.agent.request(op, **args)


def started_agents(created: list[Agent], ports: Callable[[], tuple[int, int]], prefix: str,
                   span: int = 40, rtp_count: int = RTP_PER_AGENT) -> Callable[[str], UA]:
    """A maker of started agents (recorded in ``created`` for :func:`close_all`)."""
    def make(dn: str) -> UA:
        agent = Agent(name=f"{prefix}-{dn}")
        created.append(agent)
        events = Events()
        agent.set_event_sink(events)
        agent.wait_ready(10)
        sip, rtp = ports()
        agent.request("start", sip_port=sip, sip_port_last=sip + span, rtp_port=rtp,
                      rtp_port_count=rtp_count)
        return UA(agent, events, dn)
    return make


def close_all(created: list[Agent]) -> None:
    for agent in created:
        agent.close()
    for agent in created:
        assert not agent.alive


@pytest.fixture
def spawn() -> Iterator[Callable[..., UA]]:
    created: list[Agent] = []
    start = started_agents(created, _next_ports, "ua")

    def make(dn: str, *, configure: bool = True, **cfg: Any) -> UA:
        ua = start(dn)
        if configure:
            ua.req("configure", dn=dn, display=f"User {dn}", codecs=["PCMU", "PCMA"],
                   auto_ringing=cfg.get("auto_ringing", True))
        return ua

    yield make
    close_all(created)


def connect(a: UA, b: UA) -> tuple[str, str]:
    """A calls B, B answers; returns (A's handle, B's handle) once both are confirmed."""
    seen = len(b.events.of("incoming"))
    ca = a.req("make_call", target=b.uri)["call"]
    cb = b.events.wait_count("incoming", seen + 1)[-1]["call"]
    b.req("answer", call=cb)
    a.events.wait("confirmed", call=ca)
    b.events.wait("confirmed", call=cb)
    return ca, cb


# --------------------------------------------------------------------------------- tests


def test_start_binds_requested_port_and_skips_a_taken_one(spawn: Callable[..., UA]) -> None:
    ua = spawn("100", configure=False)
    agent = Agent(name="ports")
    try:
        agent.wait_ready()
        sip, rtp = _next_ports()
        foreign = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            foreign.bind(("127.0.0.1", sip))
            result = agent.request("start", sip_port=sip, sip_port_last=sip + 10,
                                   rtp_port=rtp, rtp_port_count=RTP_PER_AGENT)
            assert result["sip_port"] == sip + 2
            assert agent.sip_port == sip + 2
            with pytest.raises(AgentError, match="already started"):
                agent.request("start", sip_port=sip + 4, rtp_port=rtp)
        finally:
            foreign.close()
        # a range with no free port is refused with a message naming the range
        with pytest.raises(AgentError, match=rf"{ua.agent.sip_port}-{ua.agent.sip_port}"):
            ua2 = Agent(name="ports2")
            try:
                ua2.wait_ready()
                ua2.request("start", sip_port=ua.agent.sip_port, sip_port_last=ua.agent.sip_port,
                            rtp_port=rtp)
            finally:
                ua2.close()
    finally:
        agent.close()
    assert ua.agent.sip_port is not None and SIP_FIRST <= ua.agent.sip_port <= SIP_LAST


def test_basic_call_events_on_both_sides(spawn: Callable[..., UA]) -> None:
    a, b = spawn("100"), spawn("200")
    ca = a.req("make_call", target=b.uri, headers={"X-Sipflow-Test": "basic"})["call"]
    inc = b.events.wait("incoming")
    cb = inc["call"]
    assert inc["headers"]["X-Sipflow-Test"] == "basic"
    assert "sip:100@127.0.0.1" in inc["from"] and "sip:200@127.0.0.1" in inc["to"]
    ring = a.events.wait("ringing", call=ca)
    assert ring["code"] == 180
    b.req("answer", call=cb)
    a.events.wait("confirmed", call=ca)
    b.events.wait("confirmed", call=cb)
    assert a.req("hangup", call=ca) == {"already_ended": False}
    da = a.events.wait("disconnected", call=ca)
    db = b.events.wait("disconnected", call=cb)
    assert da["code"] == 200 and db["code"] == 200
    assert a.req("hangup", call=ca) == {"already_ended": True}
    # order on each side, and the SIP trace is attributed to the call
    kinds_a = [e["event"] for e in a.events.items if e["event"] != "sip"]
    assert kinds_a == ["ringing", "confirmed", "disconnected"]
    kinds_b = [e["event"] for e in b.events.items if e["event"] != "sip"]
    assert kinds_b == ["incoming", "confirmed", "disconnected"]
    sip_a = [(e["dir"], e["summary"].split(" ")[0], e["call"]) for e in a.events.of("sip")]
    assert ("tx", "INVITE", ca) in sip_a
    assert ("tx", "BYE", ca) in sip_a
    b.events.wait("sip", dir="rx", call=cb)
    tx_ringing = [e for e in b.events.of("sip", dir="tx") if e["summary"].endswith("180 Ringing")]
    assert tx_ringing and tx_ringing[0]["call"] == cb
    with pytest.raises(AgentError, match="unknown call"):
        a.req("hold", call="c999")


def test_respond_486_rejects_the_call(spawn: Callable[..., UA]) -> None:
    a, b = spawn("100"), spawn("200", auto_ringing=False)
    ca = a.req("make_call", target=b.uri)["call"]
    cb = b.events.wait("incoming")["call"]
    b.req("respond", call=cb, code=183, reason="Session Progress")
    assert a.events.wait("ringing", call=ca)["code"] == 183
    b.req("respond", call=cb, code=486)
    d = a.events.wait("disconnected", call=ca)
    assert d["code"] == 486 and d["reason"] == "Busy Here"
    assert b.events.wait("disconnected", call=cb)["code"] == 486
    assert a.events.of("confirmed") == []
    with pytest.raises(AgentError, match="has ended"):
        b.req("answer", call=cb)
    with pytest.raises(AgentError, match="not in 100-699"):
        b.req("respond", call="c1", code=99)


def test_hold_and_retrieve_reach_the_peer(spawn: Callable[..., UA]) -> None:
    a, b = spawn("100"), spawn("200")
    ca, cb = connect(a, b)
    assert a.req("hold", call=ca) == {"code": 200}  # replies on the re-INVITE's 2xx
    assert b.events.wait("held", call=cb)["direction"] in ("sendonly", "inactive")
    with pytest.raises(AgentError, match="bad target URI"):
        b.req("transfer", call=cb, target="not a uri")
    assert a.req("retrieve", call=ca) == {"code": 200}
    b.events.wait("retrieved", call=cb)
    assert a.events.of("held") == [] and a.events.of("retrieved") == []
    a.req("hangup", call=ca)
    b.events.wait("disconnected", call=cb)


def test_dtmf_rfc2833_and_info_arrive_in_order(spawn: Callable[..., UA]) -> None:
    a, b = spawn("100"), spawn("200")
    ca, cb = connect(a, b)
    t0 = time.monotonic()
    assert a.req("dtmf", call=ca, digits="123#", method="rfc2833", interval_ms=100) == {
        "sent": "123#"}
    assert time.monotonic() - t0 >= 0.3  # three intervals between four digits
    a.req("dtmf", call=ca, digits="9", method="info", interval_ms=100)
    got = b.events.wait_count("dtmf", 5, call=cb)
    assert [(e["digit"], e["method"]) for e in got] == [
        ("1", "rfc2833"), ("2", "rfc2833"), ("3", "rfc2833"), ("#", "rfc2833"), ("9", "info")]
    with pytest.raises(AgentError, match="invalid DTMF"):
        a.req("dtmf", call=ca, digits="12x", method="rfc2833", interval_ms=100)
    a.req("hangup", call=ca)
    b.events.wait("disconnected", call=cb)


def test_blind_transfer(spawn: Callable[..., UA]) -> None:
    a, b, c = spawn("100"), spawn("200"), spawn("300")
    ca, cb = connect(a, b)
    assert a.req("transfer", call=ca, target=c.uri) == {"code": 100}  # REFER got 202
    tr = b.events.wait("transferred", call=cb)
    assert tr["target"].startswith("<sip:300@") or "sip:300@" in tr["target"]
    new_b = tr["new_call"]
    inc = c.events.wait("incoming")
    c.req("answer", call=inc["call"])
    b.events.wait("confirmed", call=new_b)
    c.events.wait("confirmed", call=inc["call"])
    final = a.events.wait("notify", call=ca, final=True)
    assert final["code"] == 200
    a.req("hangup", call=ca)
    b.events.wait("disconnected", call=cb)
    b.req("hangup", call=new_b)
    c.events.wait("disconnected", call=inc["call"])


def test_attended_transfer_replaces_the_consult_call(spawn: Callable[..., UA]) -> None:
    a, b, c = spawn("100"), spawn("200"), spawn("300")
    primary_a, primary_b = connect(a, b)
    consult_a, consult_c = connect(a, c)
    a.req("transfer_attended", call=primary_a, dest_call=consult_a)
    tr = b.events.wait("transferred", call=primary_b)
    assert "Replaces" in tr["target"]
    rep = c.events.wait("replaced", call=consult_c)
    new_c, new_b = rep["new_call"], tr["new_call"]
    assert c.events.of("incoming", call=new_c) == []  # a replacement is not a new call
    c.events.wait("confirmed", call=new_c)
    b.events.wait("confirmed", call=new_b)
    c.events.wait("disconnected", call=consult_c)
    a.events.wait("disconnected", call=consult_a)
    assert a.events.wait("notify", call=primary_a, final=True)["code"] == 200
    a.req("hangup", call=primary_a)
    b.events.wait("disconnected", call=primary_b)
    b.req("hangup", call=new_b)
    c.events.wait("disconnected", call=new_c)


def _write_wav(path: Path, seconds: float = 0.3, rate: int = 8000) -> None:
    frames = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
        for i in range(int(seconds * rate))
    )
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)


def test_play_wav_reports_play_done(spawn: Callable[..., UA], tmp_path: Path) -> None:
    a, b = spawn("100"), spawn("200")
    ca, cb = connect(a, b)
    wav = tmp_path / "tone.wav"
    _write_wav(wav)
    t0 = time.monotonic()
    a.req("play", call=ca, path=str(wav))
    done = a.events.wait("play_done", call=ca)
    assert done["path"] == str(wav)
    assert time.monotonic() - t0 >= 0.25
    missing = tmp_path / "nope.wav"
    with pytest.raises(AgentError, match=str(missing)):
        a.req("play", call=ca, path=str(missing))
    a.req("hangup", call=ca)
    b.events.wait("disconnected", call=cb)


def test_reset_leaves_no_calls(spawn: Callable[..., UA]) -> None:
    a, b = spawn("100"), spawn("200")
    connect(a, b)
    ringing_call = a.req("make_call", target=b.uri)["call"]  # left unanswered
    b.events.wait_count("incoming", 2)
    assert len(a.req("ping")["calls"]) == 2
    a.req("reset")
    ping = a.req("ping")
    assert (ping["pid"], ping["calls"], ping["configured"]) == (a.agent.agent_pid, [], False)
    a.events.wait("disconnected", call=ringing_call)
    b.events.wait_count("disconnected", 2)
    assert b.req("ping")["calls"] == []
    with pytest.raises(AgentError, match="configure"):
        a.req("make_call", target=b.uri)
    # usable again after a new configure
    a.req("configure", dn="101", codecs=["PCMA"])
    again = a.req("make_call", target=b.uri)["call"]
    assert again not in ("c1", "c2")  # handles are never reused
    inc = b.events.wait_count("incoming", 3)[-1]
    b.req("answer", call=inc["call"])
    a.events.wait("confirmed", call=again)
    a.req("hangup", call=again)
    b.events.wait("disconnected", call=inc["call"])


def test_kill_fails_pending_request_with_agent_crashed(spawn: Callable[..., UA]) -> None:
    a, b = spawn("100"), spawn("200")
    ca, _cb = connect(a, b)
    outcome: list[BaseException] = []

    def slow() -> None:
        try:
            a.req("dtmf", call=ca, digits="1111111111", method="info", interval_ms=1000)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            outcome.append(exc)

    t = threading.Thread(target=slow)
    t.start()
    a.events.wait("sip", dir="tx", timeout=5)
    time.sleep(0.1)
    assert a.req("ping")["calls"] == [ca]  # another request while the dtmf one is in flight
    a.agent.kill()
    t.join(5)
    assert not t.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], AgentCrashed)
    crashed = outcome[0]
    assert crashed.returncode == -9
    died = a.events.wait("agent_died")
    assert died["returncode"] == -9
    assert not a.agent.alive
    with pytest.raises(AgentCrashed):
        a.req("ping")
    b.events.wait("dtmf")  # the peer kept working


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_close_leaves_no_process_thread_or_fd() -> None:
    before_fds = _fds()
    before_threads = {t.name for t in threading.enumerate()}
    agents = [Agent(name=f"close{i}") for i in range(3)]
    for ag in agents:
        ag.wait_ready()
    sip, rtp = _next_ports()
    agents[0].request("start", sip_port=sip, rtp_port=rtp, rtp_port_count=RTP_PER_AGENT)
    names = {t.name for t in threading.enumerate()} - before_threads
    assert "sipflow-agent-close0-reader" in names and "sipflow-agent-close0-stderr" in names
    pids = [ag.pid for ag in agents]
    agents[2].kill()
    for ag in agents:
        ag.close()
        ag.close()  # idempotent
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # already reaped: no zombie
        assert not Path(f"/proc/{pid}").exists()
    assert {t.name for t in threading.enumerate()} - before_threads == set()
    assert _fds() - before_fds == set()
    assert all(not ag.alive for ag in agents)
    assert agents[0].stderr_tail(5)  # kept after close for reports


def test_abort_is_reported_with_exit_code_and_stderr_tail(spawn: Callable[..., UA]) -> None:
    a = spawn("100")
    with pytest.raises(AgentCrashed) as info:
        a.req("debug_abort", message="simulated pjlib assert")
    assert info.value.returncode == -6  # SIGABRT, as a C assert
    assert any("simulated pjlib assert" in line for line in info.value.stderr_tail)
    died = a.events.wait("agent_died")
    assert died["returncode"] == -6
    assert any("simulated pjlib assert" in line for line in died["stderr"])


def test_agent_exits_when_its_parent_dies(tmp_path: Path) -> None:
    """The channel closing (parent SIGKILLed) makes the agent exit by itself."""
    import subprocess
    import sys

    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})\n"
        "from pytest_sipflow.agent import Agent\n"
        "a = Agent(name='orphan')\n"
        "a.wait_ready()\n"
        "print(a.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        agent_pid = int(parent.stdout.readline())
        parent.kill()
        parent.wait()
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()

    def exited() -> bool:
        try:
            with open(f"/proc/{agent_pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # zombie of init
        except FileNotFoundError:
            return True

    deadline = time.monotonic() + 5
    while not exited() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert exited(), f"agent {agent_pid} outlived its parent"


def test_client_side_never_imports_pjsua2() -> None:
    import subprocess
    import sys

    code = ("import sys; import pytest_sipflow.agent as a; a.Agent; "
            "assert 'pjsua2' not in sys.modules, 'pjsua2 imported'; "
            "assert not [m for m in sys.modules if m.startswith('pytest_sipflow.agent.pj')]")
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONPATH=root)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=30)


def test_a_kept_trace_is_built_only_when_asked(spawn: Callable[..., UA]) -> None:
    """``trace: keep``: no ``sip`` event leaves the agent; ``trace`` returns the same records
    a streaming agent sends, each event says how many preceded it, ``reset`` empties it."""
    a, b = spawn("100", configure=False), spawn("200")
    a.req("configure", dn="100", codecs=["PCMU", "PCMA"], trace="keep")
    ca, cb = connect(a, b)
    a.req("hangup", call=ca)
    a.events.wait("disconnected", call=ca)
    b.events.wait("disconnected", call=cb)
    assert a.events.of("sip") == []
    kept = a.req("trace")
    records = kept["records"]
    assert kept["count"] == len(records) >= 5
    summaries = [(r["dir"], r["summary"].split(" ")[0], r["call"]) for r in records]
    assert summaries[0] == ("tx", "INVITE", ca)
    assert ("rx", "SIP/2.0", ca) in summaries and ("tx", "BYE", ca) in summaries
    streamed = b.events.of("sip")
    assert set(records[0]) == set(streamed[0])  # one record shape, streamed or kept
    assert [r["raw"] for r in records if r["dir"] == "tx" and "INVITE" in r["summary"]] == \
        [r["raw"] for r in streamed if r["dir"] == "rx" and "INVITE" in r["summary"]]
    # an event counts the messages kept before it: the 200 OK precedes "confirmed"
    confirmed = a.events.wait("confirmed", call=ca)
    assert confirmed["code"] == 200 and confirmed["reason"] == "OK"
    before = [r["summary"] for r in records[:confirmed["sip_n"]]]
    assert before[-1].startswith("SIP/2.0 200") or before[-2].startswith("SIP/2.0 200")
    # from ``since`` on (a late message, e.g. the 200 to the BYE, may have come since)
    assert a.req("trace", since=len(records) - 1)["records"][0] == records[-1]
    a.req("reset")
    assert a.req("trace") == {"records": [], "count": 0}
    a.req("configure", dn="100")  # the next user streams again
    again = a.req("make_call", target=b.uri)["call"]
    a.events.wait("sip", dir="tx", call=again)
    a.req("hangup", call=again)


def test_reset_can_keep_a_local_account_for_the_next_user(spawn: Callable[..., UA]) -> None:
    a, b = spawn("100"), spawn("200")
    connect(a, b)
    assert a.req("reset", keep_account=True) == {"kept_account": True}
    ping = a.req("ping")
    assert (ping["calls"], ping["configured"]) == ([], True)
    ca, cb = connect(a, b)  # no configure needed: the account is as it was
    a.req("hangup", call=ca)
    b.events.wait("disconnected", call=cb)
    assert a.req("reset") == {}  # without keep_account the account goes
    assert a.req("ping")["configured"] is False
