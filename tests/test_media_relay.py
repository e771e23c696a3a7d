"""Media through a real relay: a Kamailio that anchors every call's RTP in rtpengine
(``KamailioServer(rtpengine=...)``), real calls between registered agents, and a fault the
relay is asked for (``X-Sipflow-Fault``) that silences one direction.

Three independent witnesses: the SDP each agent received (it names the relay's port, never
the peer's), rtpengine's own ``query`` (what it received from whom) and a capture of ``lo``
(what the relay really sent on, and that no packet went straight from agent to agent).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from conftest import chain, command, event, instance, scenario
from pytest_sipflow.sip.message import SipMessage
from pytest_sipflow.testing import KamailioServer, available
from pytest_sipflow.testing.capture import LoopbackCapture
from pytest_sipflow.testing.fixtures import (  # noqa: F401 - fixtures used by name
    kamailio_accounts, kamailio_media_server, rtpengine_relay)
from pytest_sipflow.testing.rtpengine import Leg, RtpEngine

pytestmark = [
    pytest.mark.skipif(available(tls=False) is not None, reason=str(available(tls=False))),
    pytest.mark.skipif(shutil.which("rtpengine") is None,
                       reason="rtpengine is not installed (Debian package rtpengine-daemon)"),
]

TALK_S = 1.0      # the capture window, once both sides are connected
MIN_PACKETS = 10  # ~50 packets/s flow each way: 10 in 1 s leaves a 5x margin


def can_capture() -> str | None:
    """None when dumpcap can capture on lo here, else why not."""
    if shutil.which("dumpcap") is None:
        return "dumpcap is not installed (Debian package tshark)"
    if os.geteuid() != 0:
        return "capturing on lo needs root (or dumpcap's capabilities)"
    return None


@dataclass
class Relayed:
    """What one call through the relay left: SDPs as received, relay legs, capture."""

    offer: SipMessage      # the INVITE as the callee got it
    answer: SipMessage     # the 200 as the caller got it
    caller: Leg
    callee: Leg
    flows: Any             # Counter[(src port, dst port)] on lo during the talk window

    def sent(self, src: int, dst: int) -> int:
        return int(self.flows[(src, dst)])


def sdp_port(message: SipMessage) -> int:
    found = re.search(r"^m=audio (\d+) ", message.body, re.MULTILINE)
    assert found, f"no m=audio line in the SDP of:\n{message.text}"
    return int(found.group(1))


def from_tag(message: SipMessage) -> str:
    found = re.search(r";\s*tag=([^;>\s]+)", message.headers.get("From") or "")
    assert found, f"no From tag in:\n{message.text}"
    return found.group(1)


def relayed_call(sip_instance: Any, server: KamailioServer, relay: RtpEngine,
                 accounts: dict[str, str], fault: str | None = None) -> Relayed:
    """1001 calls 1002 through ``server``; both talk for TALK_S under a capture of lo."""
    reg = server.registrar("udp")
    alice = sip_instance("alice", "1001", registrar=reg, password=accounts["1001"])
    bob = sip_instance("bob", "1002", registrar=reg, password=accounts["1002"])
    out = alice.call("1002", headers={"X-Sipflow-Fault": fault} if fault else None)
    inc = bob.wait_incoming()
    offer = inc.last_message
    assert offer is not None and offer.method == "INVITE"
    inc.answer()
    out.wait_answered()
    answer = out.last_message
    assert answer is not None and answer.status == 200
    legs = relay.legs(offer.call_id or "")
    caller, callee = legs.pop(from_tag(offer)), legs.popitem()[1]
    ends = f"udp and (port {caller.endpoint_port} or port {callee.endpoint_port})"
    with LoopbackCapture(ends) as capture:
        time.sleep(TALK_S)
    caller, callee = (relay.legs(offer.call_id or "")[leg.tag] for leg in (caller, callee))
    out.release()
    inc.wait_disconnected()
    return Relayed(offer, answer, caller, callee, capture.flows())


@pytest.fixture
def capture_rights() -> None:
    reason = can_capture()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def relay_env(kamailio_media_server: KamailioServer, rtpengine_relay: RtpEngine,
              kamailio_accounts: dict[str, str]) -> Iterator[tuple[Any, ...]]:
    """The server, relay and accounts; afterwards (request it before ``sip_instance``, so it
    ends after the agents' clean-up) no phone may be left registered."""
    yield kamailio_media_server, rtpengine_relay, kamailio_accounts
    assert not any(kamailio_media_server.registrations().values()), "a phone stayed registered"


def test_both_directions_flow_through_the_relay(relay_env: tuple[Any, ...], sip_instance: Any,
                                                capture_rights: None) -> None:
    server, relay, accounts = relay_env
    call = relayed_call(sip_instance, server, relay, accounts)
    a, b = call.caller, call.callee
    # each agent was told to send to the relay's port facing it, never to its peer
    assert sdp_port(call.offer) == b.relay_port != a.endpoint_port
    assert sdp_port(call.answer) == a.relay_port != b.endpoint_port
    assert relay.port_min <= min(a.relay_port, b.relay_port) <= relay.port_max
    # the relay received from both ...
    assert a.packets_in >= MIN_PACKETS and b.packets_in >= MIN_PACKETS, (a, b)
    # ... and sent each side's audio on to the other; nothing went agent to agent
    flows = {"alice → relay": call.sent(a.endpoint_port, a.relay_port),
             "relay → bob": call.sent(b.relay_port, b.endpoint_port),
             "bob → relay": call.sent(b.endpoint_port, b.relay_port),
             "relay → alice": call.sent(a.relay_port, a.endpoint_port)}
    assert min(flows.values()) >= MIN_PACKETS, flows
    direct = call.sent(a.endpoint_port, b.endpoint_port) + call.sent(b.endpoint_port,
                                                                    a.endpoint_port)
    assert direct == 0, f"{direct} RTP packets bypassed the relay"
    assert "SIPFLOW-FAULT" not in server.log_text()


@pytest.mark.parametrize("fault, silent", [("drop-caller-media", "alice → bob"),
                                           ("drop-callee-media", "bob → alice")],
                         ids=["drop-caller-media", "drop-callee-media"])
def test_a_dropped_direction_is_dead_at_the_relay_only(
        relay_env: tuple[Any, ...], sip_instance: Any, capture_rights: None,
        fault: str, silent: str) -> None:
    """The talker still sends and the relay still receives; the relay sends nothing on,
    while the other direction flows as before."""
    server, relay, accounts = relay_env
    call = relayed_call(sip_instance, server, relay, accounts, fault=fault)
    a, b = call.caller, call.callee
    talker, hearer = (a, b) if silent == "alice → bob" else (b, a)
    assert call.sent(talker.endpoint_port, talker.relay_port) >= MIN_PACKETS
    assert talker.packets_in >= MIN_PACKETS
    assert call.sent(hearer.relay_port, hearer.endpoint_port) == 0, f"{silent} is not silent"
    assert call.sent(hearer.endpoint_port, hearer.relay_port) >= MIN_PACKETS
    assert call.sent(talker.relay_port, talker.endpoint_port) >= MIN_PACKETS
    assert f"SIPFLOW-FAULT {fault} callid={call.offer.call_id}" in server.log_text()
    assert "X-Sipflow-Fault" not in call.offer.text, "the fault header reached the callee"


def test_relay_address_is_checked() -> None:
    with pytest.raises(ValueError, match=r"rtpengine control address 'localhost:2223'"):
        KamailioServer({"1001": "pw"}, rtpengine="localhost:2223")


# -- expectMedia through the relay (on as soon as the engine samples media stats) ----------

def _engine_has_media_checks() -> bool:
    from pytest_sipflow.api.ua import Call

    return hasattr(Call, "media_stats")


def media_scenario(server: KamailioServer, accounts: dict[str, str],
                   fault: str | None) -> str:
    """alice (1001) calls bob (1002) through ``server``; both check their media while the
    call runs: RTP sent and received, at least 10 packets."""
    host, port = server.registrar("udp").split(":")
    at = {"pbxHost": host, "pbxPort": port, "pbxTransport": "UDP"}
    expect = {"received": True, "sent": True, "minPackets": MIN_PACKETS}
    dial = {"headers": {"X-Sipflow-Fault": fault}} if fault else {}
    nodes = [instance("alice", "1001", password=accounts["1001"], **at),
             instance("bob", "1002", password=accounts["1002"], **at),
             command("call", "MakeCall", "alice", callId="c", targetUri="1002", **dial),
             event("alice-media", "MEDIA", "alice", callId="c", timeout=1000,
                   expectMedia=expect),
             command("bye", "Release", "alice", callId="c"),
             event("in", "INCOMING", "bob", callId="c", timeout=5000),
             command("answer", "Answer", "bob", callId="c"),
             event("bob-media", "MEDIA", "bob", callId="c", timeout=700, expectMedia=expect),
             event("gone", "DISCONNECTED", "bob", callId="c", timeout=5000)]
    return scenario(nodes, chain("alice", "call", "alice-media", "bye")
                    + chain("bob", "in", "answer", "bob-media", "gone"),
                    name="media through rtpengine", timeout=20000)


@pytest.mark.skipif(not _engine_has_media_checks(),
                    reason="expectMedia / the MEDIA event are not in the engine yet")
def test_expect_media_through_the_relay(relay_env: tuple[Any, ...],
                                        sipflow_pytester: pytest.Pytester) -> None:
    """The media checks judged on relayed calls (one run, three files): a clean call
    passes, a direction the relay drops fails naming who heard nothing from whom."""
    server, _relay, accounts = relay_env
    sipflow_pytester.makefile(".sipflow.json", **{
        "clean": media_scenario(server, accounts, None),
        "drop-caller": media_scenario(server, accounts, "drop-caller-media"),
        "drop-callee": media_scenario(server, accounts, "drop-callee-media")})
    result = sipflow_pytester.runpytest("-v")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*clean.sipflow.json::* PASSED*"])
    for node, line in (("bob-media", "*bob received 0 RTP packets from alice*one-way audio*"),
                       ("alice-media", "*alice received 0 RTP packets from bob*one-way audio*")):
        result.stdout.fnmatch_lines([f"*failing node: '{node}'*", line])
