"""Bug 4: an idle agent blocks instead of polling (≤ 0.2 % of a core, measured quietly).

Bounds here are generous (the machine is shared): quiet runs measure ≈ 0.03 %, the old
5 ms poll cost 1.7-3.6 %, the null sound device's clock alone ≈ 0.4 %.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

from pytest_sipflow.agent import Agent
from pytest_sipflow.agent.measure import cpu_percent
from test_agent import UA, connect, spawn  # noqa: F401 - spawn is a fixture

IDLE_BOUND = 1.0  # percent of a core: 40× quiet, still catches the 5 ms poll (≥ 1.7)


def test_idle_agent_costs_almost_no_cpu_before_and_after_a_call(
        spawn: Callable[..., UA]) -> None:
    a, b = spawn("100"), spawn("200")
    time.sleep(0.3)
    assert cpu_percent(b.agent.pid, 4.0) < IDLE_BOUND
    ca, cb = connect(a, b)
    assert b.req("ping")["media_clock"] is True
    a.req("dtmf", call=ca, digits="1", method="rfc2833", interval_ms=100)
    b.events.wait("dtmf", call=cb)
    a.req("hangup", call=ca)
    b.events.wait("disconnected", call=cb)
    # the bridge clock stops 2 s (pj.runtime.CLOCK_IDLE_S) after the call, not at once: that
    # would delay the call's end events and every reset by a clock-thread join. (The test
    # does not import pj.runtime: pjsua2 never enters the pytest process.)
    deadline = time.monotonic() + 15
    while b.req("ping")["media_clock"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert b.req("ping")["media_clock"] is False
    assert cpu_percent(b.agent.pid, 4.0) < IDLE_BOUND
    # the clock comes back for the next call: RFC 2833 digits still flow
    ca, cb = connect(a, b)
    time.sleep(1.2)  # past the old 1 s auto-close that used to stop RFC 2833
    a.req("dtmf", call=ca, digits="7", method="rfc2833", interval_ms=100)
    assert b.events.wait("dtmf", call=cb, digit="7")["method"] == "rfc2833"
    a.req("hangup", call=ca)
    b.events.wait("disconnected", call=cb)


def test_requests_wake_an_agent_that_has_no_sip_port() -> None:
    """Waking does not depend on a UDP SIP transport: before ``start`` there is none."""
    agent = Agent(name="wake")
    try:
        agent.wait_ready()
        time.sleep(0.2)
        rtts = []
        for _ in range(5):
            t0 = time.monotonic()
            agent.request("ping")
            rtts.append(time.monotonic() - t0)
            time.sleep(0.05)
        # quiet ≈ 1 ms; without a wake-up each ping would wait for the 1 s idle block
        assert statistics.median(rtts) < 0.3, rtts
    finally:
        agent.close()
