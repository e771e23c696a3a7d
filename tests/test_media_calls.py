"""Issue 15: media truth between real agents — RTP statistics, expectMedia, MOS, SRTP.

Every check here runs over real RTP between two pjsua2 agents on 127.0.0.1; the faults are
real too (a re-INVITE to hold, a relay that drops packets or a whole direction).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest

from conftest import basic_call, chain, command, event, instance, own_pool, scenario
from pytest_sipflow.agent.pool import AgentPool
from pytest_sipflow.api.ua import SipActionError, UserAgent
from pytest_sipflow.engine.result import ScenarioResult
from pytest_sipflow.engine.runner import run_scenario
from pytest_sipflow.format import graph
from pytest_sipflow.media.stats import MediaStats
from pytest_sipflow.reporting.failure import render_failure
from support.rtprelay import RtpRelay


@pytest.fixture(scope="module")
def pool() -> Iterator[AgentPool]:
    yield from own_pool(14200, 10, "media")


class Provider:
    """The pool, with each acquired agent's requests recorded and, optionally, its SDP
    audio port rewritten (the test-only ``debug_sdp_port``) before the scenario starts."""

    def __init__(self, pool: AgentPool, sdp_ports: Sequence[int | None] = ()) -> None:
        self.pool, self.sdp_ports = pool, list(sdp_ports)
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.agents: list[Any] = []
        self.before: list[int] = []  # each agent's media_requests counter when acquired

    def acquire(self, count: int) -> Sequence[Any]:
        agents = self.pool.acquire(count)
        self.agents = list(agents)
        self.before = [a.request("ping")["media_requests"] for a in agents]
        for agent, port in zip(agents, self.sdp_ports):
            agent.request("debug_sdp_port", port=port)
        return [Recorded(a, self.sent) for a in agents]

    def release(self, agent: Any, healthy: bool) -> None:
        self.pool.release(agent.inner, healthy)


class Recorded:
    def __init__(self, inner: Any, sent: list[tuple[str, dict[str, Any]]]) -> None:
        self.inner, self.sent = inner, sent

    def send(self, op: str, **args: Any) -> Any:
        self.sent.append((op, args))
        return self.inner.send(op, **args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def run(tmp_path: Path, text: str, provider: Any) -> ScenarioResult:
    path = tmp_path / "media.sipflow.json"
    path.write_text(text)
    return run_scenario(graph.load(path), provider)


def talk(alice_media: dict[str, Any] | None = None, bob_media: dict[str, Any] | None = None,
         hold: bool = False, talk_ms: int = 1000) -> str:
    """alice calls bob; both sample the live call (MEDIA), alice hangs up; bob checks the
    final statistics. ``hold``: alice puts the call on hold before sampling."""
    a = [instance("alice", "100"),
         command("call", "MakeCall", "alice", callId="c", targetUri="200"),
         event("up", "CONNECTED", "alice", callId="c",
               expectMedia={"codec": "PCMU", "srtp": False}),
         command("hold", "Hold", "alice", callId="c"),
         event("a_media", "MEDIA", "alice", callId="c", timeout=talk_ms,
               expectMedia=alice_media or {"received": True, "sent": True}),
         event("linger", "TIMEOUT", "alice", timeout=300),
         command("bye", "Release", "alice", callId="c")]
    b = [instance("bob", "200"),
         event("in", "INCOMING", "bob", callId="c"),
         command("answer", "Answer", "bob", callId="c"),
         event("held", "HELD", "bob", callId="c"),
         event("b_media", "MEDIA", "bob", callId="c", timeout=talk_ms - 200,
               expectMedia=bob_media or {"received": True, "minPackets": 20,
                                         "maxLossPercent": 1, "minMos": 4}),
         event("gone", "DISCONNECTED", "bob", callId="c", timeout=5000,
               expectMedia={"received": True, "minPackets": 30, "codec": "PCMU",
                            **({} if hold else {"sent": True})})]
    a_ids = ["alice", "call", "up", *(["hold"] if hold else []), "a_media", "linger", "bye"]
    b_ids = ["bob", "in", "answer", *(["held"] if hold else []), "b_media", "gone"]
    nodes = [n for n in a + b if n["id"] in a_ids + b_ids]
    return scenario(nodes, chain(*a_ids) + chain(*b_ids), timeout=15000)


def failure_text(result: ScenarioResult) -> str:
    assert result.failure is not None, "the scenario passed"
    return render_failure(result)


# -- (a) a normal call passes, and its statistics reach the result ---------------------------


def test_expect_media_passes_on_a_normal_call(tmp_path: Path, pool: AgentPool) -> None:
    result = run(tmp_path, talk(), pool)
    assert result.passed, render_failure(result)
    final = MediaStats.from_dict(result.media["bob"]["c"])
    assert final.codec == "PCMU" and final.rx.packets >= 30 and final.tx.packets >= 30
    assert final.first_packet_ms is not None and final.first_packet_ms < 1000
    assert result.media["alice"]["c"]["rx"]["packets"] >= 30
    messages = [n.message for n in result.nodes.values() if n.name == "MEDIA"]
    assert all("media as expected: PCMU/8000, plain RTP" in m for m in messages), messages


# -- (b) one direction muted: hold, and a relay that drops one direction ----------------------


def test_hold_stops_the_held_side_sending_and_media_names_that_direction(
        tmp_path: Path, pool: AgentPool) -> None:
    # alice holds (sendonly): she keeps sending, bob (recvonly) stops
    quiet = run(tmp_path, talk({"received": False, "sent": True}, hold=True), pool)
    assert quiet.passed, render_failure(quiet)
    result = run(tmp_path, talk({"received": True}, hold=True), pool)
    text = failure_text(result)
    assert result.failure is not None and result.failure.node == "a_media"
    assert "alice received 0 RTP packets from bob in 1.0 s — one-way audio" in text, text


def test_a_relay_dropping_one_direction_fails_naming_it(tmp_path: Path,
                                                        pool: AgentPool) -> None:
    with RtpRelay(drop_to_a=1.0) as relay:
        provider = Provider(pool, [relay.a_port, relay.b_port])
        result = run(tmp_path, talk(), provider)
    text = failure_text(result)
    assert "alice received 0 RTP packets from bob" in text and "one-way audio" in text, text
    assert relay.count["b"]["sent"] > 20 and relay.count["a"]["sent"] == 0


def test_a_dead_port_in_one_sdp_is_healed_by_rtp_latching(tmp_path: Path,
                                                           pool: AgentPool) -> None:
    """Why the one-way faults above use a relay: alice advertises a port nobody listens on,
    yet bob sends to where alice's RTP really comes from (pjmedia latches at once)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        dead = int(sock.getsockname()[1])
    result = run(tmp_path, talk(), Provider(pool, [dead, None]))
    assert result.passed, render_failure(result)
    assert result.media["bob"]["c"]["remote_rtp"] == f"127.0.0.1:{dead}"  # the SDP said so


def test_the_same_relay_passing_everything_passes(tmp_path: Path, pool: AgentPool) -> None:
    with RtpRelay() as relay:
        result = run(tmp_path, talk(), Provider(pool, [relay.a_port, relay.b_port]))
    assert result.passed, render_failure(result)
    assert relay.count["a"]["sent"] > 20 and relay.count["b"]["sent"] > 20


# -- (c) MOS: a clean call, and one through a relay that drops 10 % ---------------------------


@pytest.fixture
def pair(pool: AgentPool) -> Iterator[Any]:
    """A maker of two UserAgents (alice, bob) on the pool's agents; all closed at the end."""
    made: list[UserAgent] = []

    def make(sdp_ports: Sequence[int | None] = (None, None), **cfg: Any
             ) -> tuple[UserAgent, UserAgent]:
        agents = pool.acquire(2)
        for agent, port in zip(agents, sdp_ports):
            agent.request("debug_sdp_port", port=port)
        alice = UserAgent(agents[0], "alice", dn="100", codecs=["PCMU"],
                          **cfg.get("alice", cfg.get("both", {})))
        made.append(alice)
        bob = UserAgent(agents[1], "bob", dn="200", codecs=["PCMU"],
                        **cfg.get("bob", cfg.get("both", {})))
        made.append(bob)
        alice._directory.add(bob.uri, "bob")
        bob._directory.add(alice.uri, "alice")
        return alice, bob

    yield make
    for ua in made:
        pool.release(ua.agent, ua.close())


def connected_call(alice: UserAgent, bob: UserAgent) -> tuple[Any, Any]:
    out = alice.call(bob)
    inc = bob.wait_incoming()
    inc.answer()
    out.wait_answered()
    return out, inc


def test_mos_of_a_clean_call_and_of_a_call_losing_ten_percent(pair: Any) -> None:
    import time

    with RtpRelay(drop_to_a=0.1, drop_to_b=0.1, seed=15) as relay:
        alice, bob = pair(both={"media": True})  # both calls at once: one wait for both
        clean_out, clean_in = connected_call(alice, bob)
        alice, bob = pair([relay.a_port, relay.b_port], both={"media": True})
        out, inc = connected_call(alice, bob)
        time.sleep(4.0)
        clean = clean_in.assert_media(min_mos=4.2, max_loss_percent=0, min_packets=150)
        clean_out.release()
        out.release()
        inc.wait_disconnected()
    assert clean is not None
    clean_mos = clean.mos("rx")
    assert clean_mos is not None
    lossy = inc.media_stats()  # the final numbers, from the disconnected event
    assert lossy is not None
    lossy_mos = lossy.mos("rx")
    assert lossy_mos is not None
    dropped = relay.count["b"]
    print(f"\nMOS clean PCMU loopback: {clean_mos.mos:.2f} (R {clean_mos.r:.1f}); "
          f"10 % loss relay: {lossy_mos.mos:.2f} (R {lossy_mos.r:.1f}, loss "
          f"{lossy.rx.loss_percent:.1f} %, burst ratio {lossy_mos.burst_ratio:.2f}); "
          f"relay dropped {dropped['dropped']} packets in {dropped['runs']} runs, pjmedia "
          f"counted {lossy.rx.loss} lost in {lossy.rx.loss_bursts} loss periods")
    assert clean_mos.mos >= 4.2
    assert lossy_mos.mos < clean_mos.mos - 0.5
    assert 5.0 <= lossy.rx.loss_percent <= 16.0
    # BurstR is measured: pjmedia's loss periods are the relay's runs of drops (the last
    # packets dropped as the call ends may never be counted as lost)
    assert lossy.rx.loss_bursts is not None
    assert dropped["runs"] - 4 <= lossy.rx.loss_bursts <= dropped["runs"]
    with pytest.raises(SipActionError, match=r"alice → bob: MOS .* \(expected ≥ 4\.2\)"):
        inc.assert_media(min_mos=4.2)


# -- (d) SRTP (SDES) ----------------------------------------------------------------------------


def test_srtp_mandatory_on_both_sides_encrypts_and_proves_it(pair: Any) -> None:
    alice, bob = pair(both={"media": True, "srtp": "mandatory"})
    out, inc = connected_call(alice, bob)
    stats = inc.assert_media(srtp=True, codec="PCMU")
    assert stats is not None and stats.srtp and stats.crypto_suite
    assert stats.crypto_suite.startswith("AES_"), stats.crypto_suite
    with pytest.raises(SipActionError, match=r"media is SRTP \(AES_.*\) \(expected plain RTP\)"):
        out.assert_media(srtp=False)
    offer = next(m for m in alice.sip_messages if m["summary"].startswith("INVITE"))
    assert "RTP/SAVP" in offer["text"] and "a=crypto:" in offer["text"]


def test_plain_rtp_fails_expect_srtp(pair: Any) -> None:
    alice, bob = pair(both={"media": True})
    out, inc = connected_call(alice, bob)
    with pytest.raises(SipActionError, match=r"media is plain RTP, not encrypted"):
        inc.assert_media(srtp=True)


def test_srtp_mandatory_against_disabled_fails_with_488_naming_srtp(pair: Any) -> None:
    alice, bob = pair(alice={"srtp": "mandatory"})
    out = alice.call(bob)
    with pytest.raises(SipActionError, match=r"488 Not Acceptable Here — SRTP: this instance "
                                             r"offers only SRTP"):
        out.wait_answered()


def test_plain_offer_to_an_srtp_only_peer_fails_with_488_and_a_hint(pair: Any) -> None:
    alice, bob = pair(bob={"srtp": "mandatory"})
    out = alice.call(bob)
    with pytest.raises(SipActionError, match=r"488 .* or it requires SRTP"):
        out.wait_answered()


# -- (e) costs nothing when unused ---------------------------------------------------------------


def test_a_scenario_without_media_keys_asks_no_statistics(tmp_path: Path,
                                                          pool: AgentPool) -> None:
    plain = Provider(pool)
    result = run(tmp_path, basic_call(), plain)
    assert result.passed, render_failure(result)
    configures = [args for op, args in plain.sent if op == "configure"]
    assert len(configures) == 2 and not any("media_stats" in c for c in configures)
    assert "media_stats" not in [op for op, _ in plain.sent] and result.media == {}
    # the agents' own counter: no statistics were read during the call
    assert [a.request("ping")["media_requests"] for a in plain.agents] == plain.before
    watched = Provider(pool)
    assert run(tmp_path, talk(), watched).passed
    assert all(args.get("media_stats") for op, args in watched.sent if op == "configure")
    assert [op for op, _ in watched.sent].count("media_stats") >= 4


# -- reports: JSON, JUnit properties, the failure's table --------------------------------------


def test_reports_carry_the_media_statistics(sipflow_pytester: pytest.Pytester) -> None:
    import json
    import xml.etree.ElementTree as ET

    sipflow_pytester.makefile(".sipflow.json", normal=talk(),
                              muted=talk({"received": True}, hold=True))
    result = sipflow_pytester.runpytest("--junitxml=junit.xml", "--sipflow-json=out")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*alice received 0 RTP packets from bob in 1.0 s — one-way*",
                                 "media (last statistics of each call*",
                                 "call * dir * codec * pkts*", "alice c * rx * PCMU/8000*"])
    doc = json.loads(next((sipflow_pytester.path / "out").glob("*normal*.json")).read_text())
    bob = doc["media"]["bob"]["c"]
    assert bob["rx"]["packets"] >= 30 and bob["mos"]["rx"]["mos"] >= 4.2
    props = {p.get("name"): p.get("value")
             for p in ET.parse(sipflow_pytester.path / "junit.xml").iter("property")}
    assert int(props["media.bob.c.rx_packets"]) >= 30, props
    assert props["media.alice.c.codec"] == "PCMU/8000"


# -- DTLS-SRTP: probed once, skipped with the reason ------------------------------------------


def test_dtls_keying_is_skipped_with_the_probes_reason(sipflow_pytester: pytest.Pytester
                                                       ) -> None:
    from pytest_sipflow.agent.capabilities import Probe

    prober = Probe()
    try:
        verdict = prober.result().verdict("dtls-srtp")
    finally:
        prober.close()
    if verdict.ok:
        pytest.skip("this pjsua2 build does DTLS-SRTP: nothing to skip")
    text = talk().replace('"dn": "100"', '"dn": "100", "srtp": "mandatory", "srtpKeying": "dtls"')
    sipflow_pytester.makefile(".sipflow.json", dtls=text)
    sipflow_pytester.makepyfile(test_api="""
        def test_dtls(sip_instance):
            sip_instance("alice", srtp="mandatory", srtp_keying="dtls")
        """)
    result = sipflow_pytester.runpytest("-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*SKIPPED*DTLS-SRTP: not available in the installed pjsua2 wheel*"])
