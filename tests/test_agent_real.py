"""Real mode at the agent level: registration, digest auth, UDP/TCP/TLS, through a REAL
Kamailio (pytest_sipflow.testing.kamailio), no mocks.

Ports: agents SIP 11000-11999 (TLS on SIP+1), RTP 28000-28999; Kamailio its own block.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from pytest_sipflow.agent import Agent, AgentError
from pytest_sipflow.testing.kamailio import KamailioServer, available
from test_agent import UA, close_all, started_agents

_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0) % 4
_SIP = itertools.cycle(range(11000 + 250 * _WORKER, 11000 + 250 * (_WORKER + 1) - 10, 10))
_RTP = itertools.cycle(range(28000 + 250 * _WORKER, 28000 + 250 * (_WORKER + 1) - 20, 20))
#: A name, not 127.0.0.1: Kamailio's "myself" compares ports, and a port-less
#: sip:user@127.0.0.1 would mean 5060 (403 Relaying Forbidden). The name is an alias.
DOMAIN = "sipflow.test"
USERS = {"1101": "pw-1101-secret", "1102": "pw-1102-secret", "1103": "pw-1103-secret"}

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


@pytest.fixture(scope="module")
def kamailio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KamailioServer]:
    with KamailioServer(USERS, domain=DOMAIN, workdir=tmp_path_factory.mktemp("kamailio")) as server:
        yield server


@pytest.fixture
def agents() -> Iterator[Callable[[str], UA]]:
    created: list[Agent] = []
    yield started_agents(created, lambda: (next(_SIP), next(_RTP)), "real", span=6,
                         rtp_count=20)
    close_all(created)


def op(ua: UA, name: str, wait: float = 20.0, **args: Any) -> dict[str, Any]:
    """A request whose own ``timeout`` argument goes to the agent (``send``, not ``request``)."""
    return ua.agent.send(name, **args).wait(wait)


def account(server: KamailioServer, dn: str, transport: str = "udp", **extra: Any
            ) -> dict[str, Any]:
    args: dict[str, Any] = {"dn": dn, "display": f"User {dn}", "registrar":
                            server.registrar(transport), "transport": transport.upper(),
                            "username": dn, "password": USERS.get(dn, "x"), "timeout": 10,
                            "domain": DOMAIN}
    if transport == "tls":
        assert server.tls is not None
        args["tls"] = {"ca_file": str(server.tls.ca), "verify_server": True}
    args.update(extra)
    return args


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_two_agents_register_and_call_through_kamailio(
        kamailio: KamailioServer, agents: Callable[[str], UA], transport: str) -> None:
    a, b = agents("1101"), agents("1102")
    ra = op(a, "configure", **account(kamailio, "1101", transport))
    rb = op(b, "configure", **account(kamailio, "1102", transport))
    assert ra["code"] == 200 and ra["registered"] and ra["expires"] > 0
    assert rb["uri"] == "sip:1102@sipflow.test"
    assert a.events.wait("reg_state", code=200)["registered"] is True
    ca = a.req("make_call", target="sip:1102@sipflow.test")["call"]
    cb = b.events.wait("incoming", timeout=10)["call"]
    b.req("answer", call=cb)
    a.events.wait("confirmed", call=ca, timeout=10)
    b.events.wait("confirmed", call=cb, timeout=10)
    a.req("dtmf", call=ca, digits="4", method="info", interval_ms=0)
    b.events.wait("dtmf", call=cb, digit="4", timeout=10)
    a.req("hangup", call=ca)
    b.events.wait("disconnected", call=cb, timeout=10)
    # the traffic really went through the server, on that transport
    invite = kamailio.wait_for_request(lambda r: r.method == "INVITE" and r.from_user == "1101"
                                       and r.proto == transport)
    assert invite.ruri_user == "1102"
    sent = [e for e in a.events.of("sip", dir="tx") if e["summary"].startswith("INVITE ")]
    assert sent and all(e["transport"] == transport.upper() for e in sent)
    assert sent[0]["remote"] == kamailio.registrar(transport)
    # the 407 challenge of the INVITE was answered by the agent itself
    assert any(e["summary"].startswith("SIP/2.0 407") for e in a.events.of("sip", dir="rx"))
    # reset unregisters (Expires: 0) and removes the account
    result = a.agent.request("reset", timeout=10)
    assert result["unregister"]["code"] == 200 and result["unregister"]["expires"] <= 0
    assert a.req("ping")["configured"] is False


def test_wrong_password_is_refused_with_its_code(kamailio: KamailioServer,
                                                 agents: Callable[[str], UA]) -> None:
    a = agents("1103")
    with pytest.raises(AgentError, match=r"configure: registration to .* refused: (401|403)"):
        op(a, "configure", **account(kamailio, "1103", password="wrong-password"))
    # the register op reports any final response as a result (a test may expect 401)
    got = op(a, "register", timeout=10)
    assert got["code"] in (401, 403) and got["registered"] is False
    assert a.events.wait("reg_state")["code"] in (401, 403)
    # passwords never leave the agent: not in its log lines, not in any event
    everything = "\n".join(a.agent.stderr_tail(200)) + json.dumps(a.events.items)
    assert "wrong-password" not in everything and "***" in everything


def test_tls_with_a_wrong_ca_fails_registration_saying_so(
        kamailio: KamailioServer, agents: Callable[[str], UA]) -> None:
    assert kamailio.tls is not None
    a = agents("1101")
    args = account(kamailio, "1101", "tls")
    args["tls"] = {"ca_file": str(kamailio.tls.wrong_ca), "verify_server": True}
    with pytest.raises(AgentError, match=r"(?i)certificate|verif") as info:
        op(a, "configure", **args)
    assert "REGISTER to sip:" in str(info.value)
    # verification off: the same server is accepted (a fresh agent: one TLS setup each)
    b = agents("1102")
    args = account(kamailio, "1102", "tls")
    args["tls"] = {"verify_server": False}
    assert op(b, "configure", **args)["code"] == 200


def test_server_down_fails_within_the_register_timeout(agents: Callable[[str], UA],
                                                       tmp_path: Path) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
        hole.bind(("127.0.0.1", 0))  # a port where nothing answers SIP
        port = hole.getsockname()[1]
        a = agents("1101")
        t0 = time.monotonic()
        with pytest.raises(AgentError, match=rf"no response from sip:127.0.0.1:{port} within 2 s"):
            op(a, "configure", dn="1101", registrar=f"127.0.0.1:{port}",
                            username="1101", password="pw", timeout=2)
        assert time.monotonic() - t0 < 10  # not pjsip's 32 s
    assert a.req("ping")["configured"] is True  # reset removes it
    a.agent.request("reset", timeout=10)
    assert a.req("ping")["configured"] is False


def test_message_both_ways_through_kamailio(kamailio: KamailioServer,
                                            agents: Callable[[str], UA]) -> None:
    a, b = agents("1101"), agents("1102")
    op(a, "configure", **account(kamailio, "1101", "tcp"))
    op(b, "configure", **account(kamailio, "1102", "tcp"))
    got = op(a, "send_message", target="sip:1102@sipflow.test",
                          body="hello José", content_type="text/plain",
                          headers={"X-Sipflow": "msg"})
    assert got["code"] == 200
    msg = b.events.wait("message", timeout=10)
    assert msg["body"] == "hello José" and msg["content_type"] == "text/plain"
    assert "sip:1101@sipflow.test" in msg["from"] and msg["headers"]["X-Sipflow"] == "msg"
    with pytest.raises(AgentError, match="MESSAGE answered 404"):
        op(a, "send_message", target="sip:1103@sipflow.test", body="nobody")
