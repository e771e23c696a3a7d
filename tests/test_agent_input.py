"""Bug 7: whatever bytes reach an agent's SIP port, the agent survives and keeps them.

Real agents, real UDP datagrams to their SIP port while a call is up (a fuzz test of the
agent's inputs, not of our files).
"""

from __future__ import annotations

import base64
import socket
from typing import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_agent import UA, connect, spawn  # noqa: F401 - spawn is a fixture

LATIN1_OPTIONS = (
    "OPTIONS sip:200@127.0.0.1:{port} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:{src};branch=z9hG4bK-latin1-{n}\r\n"
    'From: "José Müller" <sip:jose@127.0.0.1:{src}>;tag=legacy{n}\r\n'
    "To: <sip:200@127.0.0.1:{port}>\r\n"
    "Call-ID: latin1-{n}@legacy-pbx\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Max-Forwards: 70\r\n"
    "Content-Length: 0\r\n\r\n"
)

MALFORMED = [
    b"INVITE sip:200@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP garbage;;;\r\nCSeq: x y z\r\n"
    b"From: <sip:\xff\xfe@x>\r\nContent-Length: 99999\r\n\r\nbody",
    b"SIP/2.0 200 \xe9\xe8\r\nVia: \x00\x01\x02\r\n\r\n" + bytes(range(256)),
    b"\xff" * 64,
]


def _send(port: int, data: bytes) -> int:
    """Send one datagram to 127.0.0.1:port; returns the source port it came from."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(data, ("127.0.0.1", port))
        return int(s.getsockname()[1])


def _still_works(a: UA, b: UA, ca: str, cb: str) -> None:
    """The call survives: DTMF crosses, hold passes, BYE ends it, both answer ping."""
    seen = len(b.events.of("dtmf", call=cb))
    a.req("dtmf", call=ca, digits="5", method="info", interval_ms=0)
    b.events.wait_count("dtmf", seen + 1, call=cb)
    assert a.req("hold", call=ca)["code"] == 200
    assert b.req("ping")["calls"] == [cb]


def test_latin1_options_and_malformed_sip_mid_call(spawn: Callable[..., UA]) -> None:
    a, b = spawn("100"), spawn("200")
    ca, cb = connect(a, b)
    port = b.agent.sip_port
    assert port is not None
    raw = LATIN1_OPTIONS.format(port=port, src=9, n=1).encode("latin-1")
    src = _send(port, raw)
    for junk in MALFORMED:
        _send(port, junk)
    rx = b.events.wait("sip", dir="rx", summary=f"OPTIONS sip:200@127.0.0.1:{port} SIP/2.0")
    assert base64.b64decode(rx["raw"]) == raw          # exact bytes for traces/pcaps
    assert "José Müller" in rx["text"]                  # readable for reports
    assert rx["sip_call_id"] == "latin1-1@legacy-pbx" and rx["call"] is None
    assert rx["transport"] == "UDP" and rx["remote"] == f"127.0.0.1:{src}"
    assert rx["local"] == f"127.0.0.1:{port}"
    # pjsip answers the OPTIONS itself; the reply goes out as a sip event too
    b.events.wait("sip", dir="tx", sip_call_id="latin1-1@legacy-pbx")
    # the unparseable ones are kept as well, flagged
    bad = b.events.wait_count("sip", 1, malformed=True)
    assert all(e["raw"] and e["text"] for e in bad)
    _still_works(a, b, ca, cb)
    a.req("hangup", call=ca)
    b.events.wait("disconnected", call=cb)
    assert b.req("ping")["calls"] == []


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.one_of(
    st.binary(min_size=1, max_size=1400),
    st.builds(lambda head, tail: head + tail,
              st.sampled_from([b"INVITE sip:x SIP/2.0\r\n", b"SIP/2.0 180 Ringing\r\n",
                               b"OPTIONS sip:200@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\n"
                               b"Call-ID: ", LATIN1_OPTIONS.format(port=1, src=2, n=3)
                               .encode("latin-1")[:120]]),
              st.binary(max_size=400)),
), min_size=1, max_size=8))
def test_random_datagrams_do_not_kill_an_agent_in_a_call(
        spawn: Callable[..., UA], datagrams: list[bytes]) -> None:
    pair = _pair(spawn)
    a, b, ca, cb = pair
    port = b.agent.sip_port
    assert port is not None
    for data in datagrams:
        _send(port, data)
    assert b.req("ping")["calls"] == [cb]
    assert a.req("ping")["calls"] == [ca]


_PAIR: list = []  # [spawn fixture, (a, b, ca, cb)] of the running test


def _pair(spawn: Callable[..., UA]) -> tuple[UA, UA, str, str]:
    """One call for all hypothesis examples of a test run (the fixture is per test)."""
    if not _PAIR or _PAIR[0] is not spawn:
        a, b = spawn("100"), spawn("200")
        ca, cb = connect(a, b)
        _PAIR[:] = [spawn, (a, b, ca, cb)]
    return _PAIR[1]


def test_call_survives_the_fuzzing(spawn: Callable[..., UA]) -> None:
    a, b = spawn("100"), spawn("200")
    ca, cb = connect(a, b)
    port = b.agent.sip_port
    assert port is not None
    import random

    rnd = random.Random(7)
    for i in range(200):
        _send(port, bytes(rnd.randrange(256) for _ in range(rnd.randrange(33, 600))))
        if i % 20 == 0:
            _send(port, LATIN1_OPTIONS.format(port=port, src=9, n=i).encode("latin-1"))
    _still_works(a, b, ca, cb)
    a.req("hangup", call=ca)
    b.events.wait("disconnected", call=cb)
