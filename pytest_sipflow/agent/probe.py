"""Probes of what the installed pjsua2 build can do, each run once per process between two
throw-away agents (never an agent that serves tests: a failing feature may abort one).

``dtls_srtp_problem()``: None when a DTLS-SRTP call connects, else the reason to skip with.
"""

from __future__ import annotations

import functools
import queue
import socket
import time
from typing import Any

from .client import Agent, AgentError

PROBE_S = 8.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@functools.cache
def dtls_srtp_problem() -> str | None:
    """Call between two agents with SRTP mandatory and DTLS keying; why it failed, or None."""
    events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
    agents = [Agent(name="probe-dtls-a"), Agent(name="probe-dtls-b")]
    try:
        for agent, dn in zip(agents, ("1", "2")):
            agent.set_event_sink(events.put)
            agent.wait_ready()
            sip, rtp = _free_port(), _free_port()
            agent.request("start", sip_port=sip, sip_port_last=sip + 40, rtp_port=rtp,
                          rtp_port_count=4)
            agent.request("configure", dn=dn, srtp="mandatory", srtp_keying="dtls")
        callee = agents[1]
        target = f"sip:2@127.0.0.1:{callee.sip_port}"
        call = agents[0].request("make_call", target=target)["call"]
        end = time.monotonic() + PROBE_S
        while time.monotonic() < end:
            try:
                ev = events.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            kind = ev.get("event")
            if kind == "incoming":
                callee.request("answer", call=ev["call"])
            elif kind == "confirmed" and ev.get("call") == call:
                return None
            elif kind == "disconnected" and ev.get("call") == call:
                return ("DTLS-SRTP does not work in this pjsua2 build: a probe call between two "
                        "agents with srtp mandatory and DTLS keying ended "
                        f"{ev.get('code')} {ev.get('reason')}")
        return f"DTLS-SRTP does not work in this pjsua2 build: a probe call did not connect " \
               f"within {PROBE_S:g} s"
    except (AgentError, TimeoutError, OSError) as exc:
        return f"DTLS-SRTP could not be probed in this pjsua2 build: {exc}"
    finally:
        for agent in agents:
            agent.close()
