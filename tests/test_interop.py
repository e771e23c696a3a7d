"""Real mode against things that are not us (issue 9 acceptance): a foreign SIP stack
(SIPp, Debian's sip-tester) calling our instances and answering them through a REAL
Kamailio, un-REGISTER after a pytest-timeout and after Ctrl-C, and refresh before expiry.

Every claim is checked from outside the plugin: SIPp's exit status (it fails on any
unexpected message), Kamailio's request log (``server.requests()``: both legs of a call
went through the server) and its registration log (the ``SIPFLOW-REG`` lines: contacts
per AOR after each accepted REGISTER).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import chain, command, event, exported_kamailio, scenario, SLOT, own_rtp_base, interrupt_when_talking
from pytest_sipflow.testing import KamailioServer, available
from test_kamailio import free_port, run_sipp, sipp_command
from test_plugin import processes_with_token
from test_real_mode import assert_unregistered, at, phone, user

pytestmark = [
    pytest.mark.skipif(available() is not None, reason=str(available())),
    pytest.mark.skipif(shutil.which("sipp") is None,
                       reason="sipp not installed (Debian: sip-tester)"),
]

_REG = re.compile(r"SIPFLOW-REG aor=(\S+) contacts=(\d+) ")

#: Inner-run conftest: starts the SIPp command given in SIPFLOW_TEST_SIPP when node "in"
#: starts waiting (our instance is registered by then), and at the end of the session
#: writes SIPp's exit status and output to sipp.json.
SIPP_STARTER = '''
import json, os, subprocess
PROCS = []

def pytest_sipflow_node_state(item, event):
    if event.node_id == "in" and event.new_state == "running" and not PROCS:
        PROCS.append(subprocess.Popen(json.loads(os.environ["SIPFLOW_TEST_SIPP"]),
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))

def pytest_sessionfinish(session):
    for proc in PROCS:
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        with open("sipp.json", "w") as f:
            json.dump({"rc": proc.returncode, "pid": proc.pid,
                       "out": out.decode(errors="replace")}, f)
'''


@pytest.fixture(scope="module")
def kamailio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KamailioServer]:
    """This module's own server: its registration log holds only what these runs did."""
    yield from exported_kamailio(tmp_path_factory.mktemp("kamailio-interop"))


@pytest.fixture
def interop_pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
                     ) -> pytest.Pytester:
    """A pytester with SIP/RTP port blocks away from conftest's ``sipflow_pytester`` ones
    (other suites may run on this machine at the same time), its agents marked by a token."""
    slot = SLOT
    pytester.makeini(f"""
        [pytest]
        sipflow_port_base = {12000 + slot * 80}
        sipflow_rtp_port_base = {own_rtp_base(9)}
        sipflow_port_range = 40
        """)
    monkeypatch.setenv("SIPFLOW_TEST_TOKEN", uuid.uuid4().hex)
    return pytester


def no_agent_left(token: str) -> None:
    """No agent process of the run is left (bounded wait: the pool ends them by pid)."""
    deadline = time.monotonic() + 10
    while processes_with_token(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes_with_token(token), "an agent process of the run was left"


def registers_since(server: KamailioServer, mark: int) -> list[tuple[str, int]]:
    """(AOR user, contacts after it) of every accepted REGISTER after log line ``mark``."""
    found = []
    for line in server.log_lines()[mark:]:
        match = _REG.search(line)
        if match is not None:
            found.append((match.group(1), int(match.group(2))))
    return found


def record_route(server: KamailioServer) -> str:
    """The regex an expectHeaders check uses for the server's Record-Route over UDP."""
    return re.escape(server.registrar("udp"))


# -- 1. a foreign SIP stack -------------------------------------------------------------------


def test_sipp_uac_with_digest_auth_calls_our_instance_through_kamailio(
        kamailio: KamailioServer, interop_pytester: pytest.Pytester, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """SIPp (not pjsua2) authenticates its INVITE (407) and calls our registered instance:
    our INCOMING sees the server's Record-Route and SIPp's From, we answer, SIPp's BYE
    reaches us, SIPp exits 0; ACK and BYE go through Kamailio too."""
    callee, caller = user(1), user(2)
    bob = phone("bob", 1, **at(kamailio))
    nodes = [bob,
             event("in", "INCOMING", "bob", callId="c", timeout=30000,
                   expectHeaders={"Record-Route": record_route(kamailio),
                                  "From": f"sip:{caller}@"}),
             command("answer", "Answer", "bob", callId="c"),
             event("gone", "DISCONNECTED", "bob", callId="c", timeout=20000)]
    interop_pytester.makefile(".sipflow.json", sipp_calls=scenario(
        nodes, chain("bob", "in", "answer", "gone"), name="SIPp calls us", timeout=60000))
    interop_pytester.makeconftest(SIPP_STARTER)
    cmd = sipp_command(kamailio, "uac-call.xml", port=free_port(), user=caller,
                       password=kamailio.users[caller], extra=("-s", callee),
                       timeout_s=30, tmp=tmp_path)
    monkeypatch.setenv("SIPFLOW_TEST_SIPP", json.dumps(cmd))
    mark = len(kamailio.log_lines())
    result = interop_pytester.runpytest("-rA")
    sipp = json.loads((interop_pytester.path / "sipp.json").read_text())
    result.assert_outcomes(passed=1)
    assert sipp["rc"] == 0, sipp["out"]
    call_id = f"1-{sipp['pid']}@127.0.0.1"
    methods = sorted(r.method for r in kamailio.requests() if r.call_id == call_id)
    assert methods == ["ACK", "BYE", "INVITE", "INVITE"], methods  # 407'd, then with creds
    invite = [r for r in kamailio.requests("INVITE") if r.call_id == call_id][-1]
    assert (invite.from_user, invite.ruri_user, invite.proto) == (caller, callee, "udp")
    assert (callee, 1) in registers_since(kamailio, mark)
    assert_unregistered(kamailio, callee)
    no_agent_left(os.environ["SIPFLOW_TEST_TOKEN"])


def test_our_instance_calls_a_sipp_uas_registered_with_kamailio(
        kamailio: KamailioServer, interop_pytester: pytest.Pytester, tmp_path: Path) -> None:
    """SIPp registers a uas (its own digest auth) and our MakeCall to its number is answered
    through the server (the 200 carries Kamailio's Record-Route), we hang up and the uas,
    which insists on the Record-Route and on our BYE, exits 0."""
    target = user(3)
    uas_port = free_port()
    uas = subprocess.Popen(
        ["sipp", "-sf", str(Path(__file__).parent / "sipp" / "uas.xml"), "-t", "u1",
         "-i", "127.0.0.1", "-p", str(uas_port), "-m", "1", "-timeout", "60s",
         "-timeout_error", "-nostdin", "-trace_err",
         "-error_file", str(tmp_path / "uas-errors.log")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        reg = run_sipp(kamailio, "register.xml", tmp_path, user=target,
                       password=kamailio.users[target],
                       extra=("-set", "contact_port", str(uas_port), "-set", "expires", "60"))
        assert reg.returncode == 0, reg.output
        alice = phone("alice", 1, **at(kamailio))
        nodes = [alice,
                 command("call", "MakeCall", "alice", callId="c", targetUri=target,
                         timeout=10000,
                         expectHeaders={"Record-Route": record_route(kamailio)}),
                 event("talk", "TIMEOUT", "alice", timeout=200),
                 command("bye", "Release", "alice", callId="c", timeout=10000)]
        interop_pytester.makefile(".sipflow.json", call_sipp=scenario(
            nodes, chain("alice", "call", "talk", "bye"), name="we call SIPp",
            timeout=30000))
        seen = len(kamailio.requests())
        result = interop_pytester.runpytest("-rA")
        uas_out, _ = uas.communicate(timeout=60)
    finally:
        if uas.poll() is None:
            uas.kill()
            uas.wait()
        # take SIPp's registration away again: the server's state is this module's proof
        run_sipp(kamailio, "register.xml", tmp_path, user=target,
                 password=kamailio.users[target],
                 extra=("-set", "contact_port", str(uas_port), "-set", "expires", "0"))
    result.assert_outcomes(passed=1)
    assert uas.returncode == 0, uas_out.decode(errors="replace")
    invites = [r for r in kamailio.requests("INVITE")
               if (r.from_user, r.ruri_user) == (user(1), target)]
    assert invites, "our INVITE never reached Kamailio"
    ours = [r for r in kamailio.requests()[seen:] if r.call_id == invites[-1].call_id]
    assert {"INVITE", "ACK", "BYE"} <= {r.method for r in ours}, ours
    assert_unregistered(kamailio, user(1))
    assert kamailio.registrations()[target] == 0
    no_agent_left(os.environ["SIPFLOW_TEST_TOKEN"])


# -- 2. un-REGISTER after a pytest-timeout and after Ctrl-C -----------------------------------


def call_up(server: KamailioServer, caller: int, callee: int) -> str:
    """A registered caller calls a registered callee, who answers; then both wait 60 s."""
    a, b = phone("a", caller, **at(server)), phone("b", callee, **at(server))
    nodes = [a, b,
             command("call", "MakeCall", "a", callId="c", targetUri=b["data"]["dn"],
                     timeout=10000),
             event("talk", "TIMEOUT", "a", timeout=60000),
             event("in", "INCOMING", "b", callId="c", timeout=10000),
             command("answer", "Answer", "b", callId="c"),
             event("gone", "DISCONNECTED", "b", callId="c", timeout=60000)]
    return scenario(nodes, chain("a", "call", "talk") + chain("b", "in", "answer", "gone"),
                    name="a long call", timeout=120000)


TALKING = '''
def pytest_sipflow_node_state(item, event):
    if event.node_id == "talk" and event.new_state == "running":
        open("talking", "w").close()
'''


def test_pytest_timeout_mid_call_unregisters_both_instances(
        kamailio: KamailioServer, interop_pytester: pytest.Pytester) -> None:
    """``--timeout 3`` stops a scenario whose call is up: clean-up still un-REGISTERs."""
    interop_pytester.makefile(".sipflow.json", long=call_up(kamailio, 4, 5))
    interop_pytester.makeconftest(TALKING)
    mark = len(kamailio.log_lines())
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "--timeout", "3"], cwd=interop_pytester.path, env=dict(os.environ),
                          capture_output=True, text=True, timeout=180)
    out = proc.stdout + proc.stderr
    assert (interop_pytester.path / "talking").exists(), out   # the call was up
    assert "1 failed" in proc.stdout, out
    assert "the run was stopped (Timeout" in proc.stdout, out
    regs = registers_since(kamailio, mark)
    assert {(user(4), 1), (user(5), 1)} <= set(regs), regs
    assert_unregistered(kamailio, user(4), user(5))
    no_agent_left(os.environ["SIPFLOW_TEST_TOKEN"])


def test_ctrl_c_mid_call_unregisters_both_instances(
        kamailio: KamailioServer, interop_pytester: pytest.Pytester) -> None:
    """SIGINT while a call through the server is up: BYE, un-REGISTER, no agent left."""
    interop_pytester.makefile(".sipflow.json", long=call_up(kamailio, 6, 7))
    interop_pytester.makeconftest(TALKING)
    mark = len(kamailio.log_lines())
    out, returncode = interrupt_when_talking(interop_pytester.path, dict(os.environ))
    assert "KeyboardInterrupt" in out, out
    assert returncode == 2, out
    regs = registers_since(kamailio, mark)
    assert {(user(6), 1), (user(7), 1)} <= set(regs), regs
    assert_unregistered(kamailio, user(6), user(7))
    call = [r for r in kamailio.requests("INVITE") if r.ruri_user == user(7)][-1]
    assert "BYE" in {r.method for r in kamailio.requests() if r.call_id == call.call_id}
    no_agent_left(os.environ["SIPFLOW_TEST_TOKEN"])


# -- 3. refresh before expiry ------------------------------------------------------------------


def test_registration_is_refreshed_before_it_expires(
        kamailio: KamailioServer, interop_pytester: pytest.Pytester) -> None:
    """An instance asking for 2 s (Kamailio raises it to its min_expires, 10 s) is still
    reachable 13 s later: it re-REGISTERed in between, and the call to it succeeds."""
    bob = phone("bob", 8, registerIntervalSeconds=2, **at(kamailio))
    alice = phone("alice", 9, **at(kamailio))
    nodes = [alice, bob,
             event("wait", "TIMEOUT", "alice", timeout=13000),
             command("call", "MakeCall", "alice", callId="c", targetUri=user(8),
                     timeout=10000),
             event("talk", "TIMEOUT", "alice", timeout=100),
             command("bye", "Release", "alice", callId="c"),
             event("in", "INCOMING", "bob", callId="c", timeout=40000),
             command("answer", "Answer", "bob", callId="c"),
             event("gone", "DISCONNECTED", "bob", callId="c", timeout=10000)]
    interop_pytester.makefile(".sipflow.json", refresh=scenario(
        nodes, chain("alice", "wait", "call", "talk", "bye")
        + chain("bob", "in", "answer", "gone"), name="refresh", timeout=60000))
    mark = len(kamailio.log_lines())
    result = interop_pytester.runpytest("-rA")
    result.assert_outcomes(passed=1)
    regs = [contacts for aor, contacts in registers_since(kamailio, mark) if aor == user(8)]
    # the first REGISTER, at least one refresh (all with a contact), then the un-REGISTER
    assert regs[-1] == 0 and len(regs) >= 3 and all(regs[:-1]), regs
    assert_unregistered(kamailio, user(8), user(9))
    no_agent_left(os.environ["SIPFLOW_TEST_TOKEN"])
