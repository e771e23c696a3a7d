"""Real mode end to end (issue 9): scenario files and Python tests registering with digest
auth through a REAL Kamailio (``pytest_sipflow.testing.KamailioServer``), never a mock.

Every run here is a pytester run of the plugin, checked from outside: the terminal
output, the JUnit file, hook events a conftest records, the server's own request log
(``server.requests()``: which transport a request came over) and its registration log
(``server.registrations()``: contacts left per AOR). After each run no agent process, no
socket of ours and no registration may be left (the ``clean`` fixture and
:func:`assert_unregistered`).
"""

from __future__ import annotations

import importlib.util
import json
import re
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, chain, command, event, exported_kamailio, instance, scenario
from pytest_sipflow.format.worker import worker_index
from pytest_sipflow.testing import KamailioServer, available
from test_kamailio import free_port
from test_plugin import processes_with_token

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

REAL = REPO / "scenarios" / "real-mode"
W = str(worker_index())  # ${SIPFLOW_WORKER} of in-process pytester runs (same environment)

#: A conftest for pytester runs: records every hook event (their repr and fields) and, at
#: the end, the stderr tails of the pool's agents, so a test can grep all of it; and kills
#: a server's process group (by the pid it is given) when a chosen node completes.
RECORDER = '''
import json, os, signal
import pytest
from pytest_sipflow.glue.keys import session_key

def _keep(config, kind, event):
    with open(os.path.join(str(config.rootpath), "events.jsonl"), "a") as out:
        out.write(json.dumps({"hook": kind, "repr": repr(event), "str": str(event),
                              **event.as_dict()}) + "\\n")

def pytest_sipflow_node_state(item, event):
    _keep(item.config, "node", event)
    kill = os.environ.get("SIPFLOW_TEST_KILL_PGID")
    if kill and event.node_id == os.environ.get("SIPFLOW_TEST_KILL_AFTER") \\
            and event.new_state == "completed":
        os.killpg(int(kill), signal.SIGKILL)

def pytest_sipflow_action_log(item, event):
    _keep(item.config, "log", event)

def pytest_sipflow_scenario_state(item, event):
    _keep(item.config, "scenario", event)

def pytest_sessionfinish(session):
    sipflow = session.config.stash[session_key]
    if sipflow.has_pool:
        pool = sipflow.pool
        tails = [line for agent in list(pool._idle) + list(pool._busy)
                 for line in agent.stderr_tail(200)]
        with open(os.path.join(str(session.config.rootpath), "agent-stderr.txt"), "w") as out:
            out.write("\\n".join(tails))
'''


# -- helpers -------------------------------------------------------------------------------


def user(slot: int) -> str:
    """Account ``10<worker><slot>`` of the suite's fixed accounts (one set per xdist worker)."""
    return f"10{W}{slot}"


def phone(node_id: str, slot: int, **data: Any) -> dict[str, Any]:
    """A real-mode instance: dn and password of account ``slot`` (password from the env)."""
    return instance(node_id, user(slot), password="${PBX_PW_" + user(slot) + "}", **data)


def at(server: KamailioServer, transport: str = "UDP") -> dict[str, str]:
    """Instance keys that point at ``server`` over ``transport``."""
    host, port = server.registrar(transport.lower()).split(":")
    return {"pbxHost": host, "pbxPort": port, "pbxTransport": transport}


def call_and_hang_up(a: dict[str, Any], b: dict[str, Any], talk_ms: int = 50) -> str:
    """``a`` calls ``b``'s dn through the server, ``b`` answers, ``a`` hangs up."""
    target = b["data"]["dn"]
    nodes = [a, b, command("call", "MakeCall", a["id"], callId="c", targetUri=target),
             event("talk", "TIMEOUT", a["id"], timeout=talk_ms),
             command("bye", "Release", a["id"], callId="c"),
             event("in", "INCOMING", b["id"], callId="c", timeout=5000),
             command("answer", "Answer", b["id"], callId="c"),
             event("gone", "DISCONNECTED", b["id"], callId="c", timeout=5000)]
    return scenario(nodes, chain(a["id"], "call", "talk", "bye")
                    + chain(b["id"], "in", "answer", "gone"), name="through the server",
                    timeout=20000)


def own_sockets() -> set[str]:
    """Sockets this process holds (``socket:[inode]``): an agent left open keeps one."""
    found = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def assert_unregistered(server: KamailioServer, *users: str) -> None:
    """Each user registered during the run and its last accepted REGISTER left no contact."""
    left = server.registrations()
    for name in users:
        assert name in left, f"{name} never registered with {server} (log: {left})"
        assert left[name] == 0, f"{name} is still registered ({left[name]} contact(s))"


def events(pytester: pytest.Pytester) -> list[dict[str, Any]]:
    path = pytester.path / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def node_states(pytester: pytest.Pytester) -> dict[str, str]:
    """Last state of every node of the run (from the recorded hook events)."""
    return {e["nodeId"]: e["newState"] for e in events(pytester) if e["hook"] == "node"}


@pytest.fixture(scope="module")
def kamailio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KamailioServer]:
    """This module's own server: registrations other tests' SIPp phones leave on the
    session's server would hide (or fake) what these runs leave behind."""
    yield from exported_kamailio(tmp_path_factory.mktemp("kamailio-real-mode"))


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Marks the agents of this test (an environment token) and checks afterwards that none
    is left and that this process holds no new socket."""
    token = uuid.uuid4().hex
    monkeypatch.setenv("SIPFLOW_TEST_TOKEN", token)
    before = own_sockets()
    yield token
    deadline = time.monotonic() + 10
    while processes_with_token(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not processes_with_token(token), "an agent process of the run was left"
    assert own_sockets() <= before, "a socket of the run was left open"


@pytest.fixture
def recorder(sipflow_pytester: pytest.Pytester) -> pytest.Pytester:
    sipflow_pytester.makeconftest(RECORDER)
    return sipflow_pytester


def copy_bundled(pytester: pytest.Pytester, *names: str) -> None:
    for name in names:
        path = REAL / f"{name}.sipflow.json"
        (pytester.path / path.name).write_text(path.read_text())


def run_bundled(pytester: pytest.Pytester, server: KamailioServer, name: str) -> list[Any]:
    """Run one bundled file, which must pass; the requests the server saw meanwhile."""
    copy_bundled(pytester, name)
    seen = len(server.requests())
    pytester.runpytest().assert_outcomes(passed=1)
    return server.requests()[seen:]


# -- the bundled files -----------------------------------------------------------------------


def _make_real_mode() -> Any:
    spec = importlib.util.spec_from_file_location("make_real_mode", REAL / "make_real_mode.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_files_are_the_generators_output() -> None:
    """scenarios/real-mode/*.sipflow.json written by make_real_mode.py are its output today."""
    maker = _make_real_mode()
    assert len(maker.FILES) == 9
    for source, transport, name in maker.FILES:
        doc = json.loads((maker.SOURCE / f"{source}.sipflow.json").read_text())
        expected = json.dumps(maker.real_mode(doc, transport, name), indent=2) + "\n"
        committed = (REAL / f"{name}.sipflow.json").read_text()
        assert committed == expected, (f"{name}.sipflow.json is stale: run "
                                       "scenarios/real-mode/make_real_mode.py")


def test_wrong_password_file_fails_at_set_up_naming_instance_and_code(
        kamailio: KamailioServer, recorder: pytest.Pytester, clean: str) -> None:
    copy_bundled(recorder, "reg-01-wrong-password-udp")
    bundled = recorder.runpytest()  # as the suite runs it: an expected failure
    bundled.assert_outcomes(xfailed=1)
    result = recorder.runpytest("--runxfail")  # what the xfail hides must be the set-up
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        f"reason: registration of instance 'alice' as sip:{user(1)}@127.0.0.1 with "
        f"{kamailio.registrar('udp')} over UDP failed: the server answered 401 Unauthorized "
        "(check the username and password)",
        "  expected: 2xx to REGISTER",
        "  actual:   401 Unauthorized",
    ])
    assert "alice-waits" not in {n for n, s in node_states(recorder).items() if s != "skipped"}
    assert kamailio.registrations().get(user(1), 0) == 0


def test_register_expecting_401_passes_and_unregister_removes(
        kamailio: KamailioServer, recorder: pytest.Pytester, clean: str) -> None:
    run = run_bundled(recorder, kamailio, "reg-02-register-refused-401-udp")
    assert node_states(recorder) == {"mallory-is-refused": "completed",
                                     "alice-registers": "completed",
                                     "alice-unregisters": "completed"}
    refused = [r for r in run if r.method == "REGISTER" and r.from_user == user(4)]
    assert refused, "Mallory's REGISTER reached the server"
    assert user(4) not in kamailio.registrations(), "a wrong password was never accepted"
    assert_unregistered(kamailio, user(5))


def test_call_to_an_unregistered_user_takes_the_failure_branch(
        kamailio: KamailioServer, recorder: pytest.Pytester, clean: str) -> None:
    run = run_bundled(recorder, kamailio, "neg-02-unregistered-user-404-udp")
    assert node_states(recorder) == {"alice-dials-nobody": "failed", "alice-got-404": "completed",
                                     "alice-hangs-up": "skipped"}
    failed = [e["message"] for e in events(recorder)
              if e["hook"] == "log" and e["level"] == "error"]
    assert any("404" in m for m in failed), failed
    invites = [r for r in run if r.method == "INVITE" and r.from_user == user(1)]
    assert invites and {(r.ruri_user, r.proto) for r in invites} == {(user(9), "udp")}
    assert_unregistered(kamailio, user(1))


def test_message_exchange_through_the_server(
        kamailio: KamailioServer, recorder: pytest.Pytester, clean: str) -> None:
    run = run_bundled(recorder, kamailio, "msg-01-message-udp")
    assert set(node_states(recorder).values()) == {"completed"}
    sent = {(r.from_user, r.ruri_user) for r in run if r.method == "MESSAGE"}
    assert {(user(1), user(2)), (user(2), user(1))} <= sent
    assert_unregistered(kamailio, user(1), user(2))


# -- registrar option vs instance keys -----------------------------------------------------


def test_instance_keys_win_over_the_registrar_options(
        kamailio: KamailioServer, recorder: pytest.Pytester, clean: str) -> None:
    """alice takes --sipflow-registrar/--sipflow-transport (UDP); bob writes only
    pbxTransport TCP (the option's server, his transport); carol writes pbxHost, pbxPort
    and pbxTransport of the TLS port. The server's log shows what each one used."""
    assert kamailio.tls is not None
    alice, bob = phone("alice", 1), phone("bob", 2, pbxTransport="TCP")
    carol = phone("carol", 3, **at(kamailio, "TLS"))
    doc = json.loads(call_and_hang_up(alice, bob))
    doc["nodes"].append(carol)
    doc["nodes"].append(event("carol-waits", "TIMEOUT", "carol", timeout=10))
    doc["edges"] += chain("carol", "carol-waits")
    recorder.makefile(".sipflow.json", keys=json.dumps(doc))
    seen = len(kamailio.requests())
    result = recorder.runpytest("-v", f"--sipflow-registrar={kamailio.registrar('udp')}",
                                "--sipflow-transport=udp", f"--sipflow-tls-ca={kamailio.tls.ca}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"sipflow: real mode: registrar {kamailio.registrar('udp')} "
                                 "over UDP"])
    run = kamailio.requests()[seen:]
    protos = {(r.from_user, r.proto) for r in run if r.method == "REGISTER"}
    assert protos == {(user(1), "udp"), (user(2), "tcp"), (user(3), "tls")}
    invites = {(r.from_user, r.ruri_user, r.proto) for r in run if r.method == "INVITE"}
    assert invites == {(user(1), user(2), "udp")}
    ready = [e["message"] for e in events(recorder) if e["hook"] == "log"
             and "ready as" in e["message"]]
    assert any(f"via {kamailio.registrar('tls')} over TLS" in m for m in ready), ready
    assert_unregistered(kamailio, user(1), user(2), user(3))


# -- environment values and secrets ----------------------------------------------------------


def test_unset_password_variable_is_a_collection_error(sipflow_pytester: pytest.Pytester,
                                                        clean: str) -> None:
    doc = scenario([instance("alice", "1001", pbxHost="127.0.0.1",
                             password="${SIPFLOW_TEST_NO_SUCH_PASSWORD}"),
                    event("wait", "TIMEOUT", "alice", timeout=1)], chain("alice", "wait"))
    sipflow_pytester.makefile(".sipflow.json", unset=doc)
    result = sipflow_pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "unset.sipflow.json: invalid sipflow scenario: node 'alice', field 'data.password': "
        "environment variable SIPFLOW_TEST_NO_SUCH_PASSWORD is not set*"])
    assert "Traceback" not in result.stdout.str()


def test_a_password_is_in_no_output_of_a_failing_run(
        recorder: pytest.Pytester, clean: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two failing files: one refused at set-up (wrong password), one registered with the
    right password and failing in a node. Neither password may appear anywhere."""
    right, wrong = f"Right-{uuid.uuid4().hex[:12]}", f"Wrong-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("SIPFLOW_TEST_PW_RIGHT", right)
    monkeypatch.setenv("SIPFLOW_TEST_PW_WRONG", wrong)
    with KamailioServer({"2001": right, "2002": right}, tls=False, udp_port=free_port()) as server:
        good = instance("alice", "2001", password="${SIPFLOW_TEST_PW_RIGHT}", **at(server))
        bad = instance("mallory", "2002", password="${SIPFLOW_TEST_PW_WRONG}", **at(server))
        fails_in_a_node = scenario(
            [good, command("call", "MakeCall", "alice", targetUri="2999", timeout=3000)],
            chain("alice", "call"), name="404 fails the node")
        fails_at_set_up = scenario([bad, event("wait", "TIMEOUT", "mallory", timeout=1)],
                                   chain("mallory", "wait"), name="refused at set-up")
        recorder.makefile(".sipflow.json", node=fails_in_a_node, setup=fails_at_set_up)
        result = recorder.runpytest("-v", "-rA", "--sipflow-full-trace", "-o",
                                    "junit_logging=all", "--junitxml=junit.xml")
        result.assert_outcomes(failed=2)
        collected = recorder.runpytest("--collect-only", "-v")
        assert_unregistered(server, "2001")
    outputs = {"terminal": result.stdout.str() + result.stderr.str(),
               "collect-only": collected.stdout.str() + collected.stderr.str(),
               "junit": (recorder.path / "junit.xml").read_text(),
               "hook events": (recorder.path / "events.jsonl").read_text(),
               "agent stderr": (recorder.path / "agent-stderr.txt").read_text()}
    assert "401 Unauthorized" in outputs["terminal"] and "404" in outputs["terminal"]
    assert "REGISTER" in outputs["hook events"] and outputs["agent stderr"]
    for where, text in outputs.items():
        assert right not in text and wrong not in text, f"a password is in the {where}"
    for path in recorder.path.rglob("*"):  # and in no file the runs wrote
        if path.is_file():
            data = path.read_bytes()
            assert right.encode() not in data and wrong.encode() not in data, path


# -- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
def test_server_down_fails_at_set_up_within_the_register_timeout(
        recorder: pytest.Pytester, clean: str, transport: str) -> None:
    """Nothing answers: a UDP port bound by us that never replies, a TCP port bound but not
    listening (refused). Held for the run, so no other server on this machine can take it."""
    kind = socket.SOCK_DGRAM if transport == "UDP" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as hole:
        hole.bind(("127.0.0.1", 0))
        port = hole.getsockname()[1]
        doc = scenario([instance("alice", "1001", password="pw", pbxHost="127.0.0.1",
                                 pbxPort=str(port), pbxTransport=transport),
                        event("wait", "TIMEOUT", "alice", timeout=1)], chain("alice", "wait"))
        recorder.makefile(".sipflow.json", down=doc)
        began = time.monotonic()
        result = recorder.runpytest("--sipflow-register-timeout=2000")
        took = time.monotonic() - began
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        f"reason: registration of instance 'alice' as sip:1001@127.0.0.1 with 127.0.0.1:{port} "
        f"over {transport} failed: *no response*",
        "  actual:   no response*"])
    assert took < 30, f"set-up took {took:.1f} s with a 2 s register timeout"
    assert node_states(recorder) == {"wait": "skipped"}


def test_server_killed_mid_call_fails_at_the_timeouts_and_cleans_up(
        recorder: pytest.Pytester, clean: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kamailio is SIGKILLed (its process group, by its pid) once Bob answered: both sides
    wait for a BYE that cannot come, fail at their 3 s timeouts, and clean-up (BYE and
    un-REGISTER to a dead server) ends in bounded time with a warning, not a failure."""
    # a port outside the servers' blocks: once it is dead, no other run's server takes it
    with KamailioServer({"2001": "pw-2001", "2002": "pw-2002"}, tls=False,
                        udp_port=free_port()) as server:
        a = instance("alice", "2001", password="pw-2001", **at(server))
        b = instance("bob", "2002", password="pw-2002", **at(server))
        nodes = [a, b, command("call", "MakeCall", "alice", callId="c", targetUri="2002"),
                 event("alice-waits", "DISCONNECTED", "alice", callId="c", timeout=3000),
                 event("in", "INCOMING", "bob", callId="c"),
                 command("bob-answers", "Answer", "bob", callId="c"),
                 event("bob-waits", "DISCONNECTED", "bob", callId="c", timeout=3000)]
        recorder.makefile(".sipflow.json", killed=scenario(
            nodes, chain("alice", "call", "alice-waits")
            + chain("bob", "in", "bob-answers", "bob-waits"), timeout=30000))
        monkeypatch.setenv("SIPFLOW_TEST_KILL_PGID", str(server.pid))
        monkeypatch.setenv("SIPFLOW_TEST_KILL_AFTER", "bob-answers")
        began = time.monotonic()
        result = recorder.runpytest("-rw", "--sipflow-register-timeout=2000",
                                    "-Wdefault::pytest_sipflow.errors.SipflowWarning")
        took = time.monotonic() - began
        assert not server.running
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(["*failing node: '*-waits' (instance '*', DISCONNECTED)*",
                                 "*no DISCONNECTED*3000 ms*"])
    assert "un-REGISTER at clean-up failed: no response" in out, out  # a warning ...
    assert "reason: *un-REGISTER" not in out and "1 failed" in out  # ... not a failure
    states = node_states(recorder)
    assert states["bob-answers"] == "completed" and "failed" in (states["alice-waits"],
                                                                 states["bob-waits"])
    assert took < 60, f"the run took {took:.1f} s"


@pytest.mark.parametrize("warnings", ["default", "error"])
def test_unregister_failing_at_clean_up_is_a_warning(
        recorder: pytest.Pytester, clean: str, monkeypatch: pytest.MonkeyPatch,
        warnings: str) -> None:
    """The scenario passes, then the server is gone: the un-REGISTER is a warning. Under
    ``-W error`` that warning fails the item, but only after clean-up ended (agents back,
    the scenario's final state delivered)."""
    with KamailioServer({"2001": "pw-2001"}, tls=False, udp_port=free_port()) as server:
        doc = scenario([instance("alice", "2001", password="pw-2001", **at(server)),
                        event("wait", "TIMEOUT", "alice", timeout=300)], chain("alice", "wait"))
        recorder.makefile(".sipflow.json", gone=doc)
        monkeypatch.setenv("SIPFLOW_TEST_KILL_PGID", str(server.pid))
        monkeypatch.setenv("SIPFLOW_TEST_KILL_AFTER", "wait")
        result = recorder.runpytest("-rw", "--sipflow-register-timeout=1000",
                                    f"-W{warnings}::pytest_sipflow.errors.SipflowWarning")
    if warnings == "default":
        result.assert_outcomes(passed=1, warnings=1)
    else:
        result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*SipflowWarning: instance 'alice': un-REGISTER at clean-up "
                                 "failed: no response from sip:127.0.0.1:*"])
    scenario_states = [e["state"] for e in events(recorder) if e["hook"] == "scenario"]
    assert scenario_states == ["running", "completed"]


# -- TLS --------------------------------------------------------------------------------------


def test_tls_with_a_wrong_ca_fails_registration_saying_so(
        kamailio: KamailioServer, recorder: pytest.Pytester, clean: str) -> None:
    assert kamailio.tls is not None
    recorder.makefile(".sipflow.json", tls=call_and_hang_up(phone("alice", 1), phone("bob", 2)))
    result = recorder.runpytest(f"--sipflow-registrar={kamailio.registrar('tls')}",
                                "--sipflow-transport=tls",
                                f"--sipflow-tls-ca={kamailio.tls.wrong_ca}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        f"reason: registration of instance '*' as sip:*@127.0.0.1 with "
        f"{kamailio.registrar('tls')} over TLS failed: TLS certificate verification failed*",
        "  actual:   certificate verification failed"])


def test_tls_insecure_registers_and_the_header_says_so(
        kamailio: KamailioServer, recorder: pytest.Pytester, clean: str) -> None:
    recorder.makefile(".sipflow.json", tls=call_and_hang_up(phone("alice", 1), phone("bob", 2)))
    seen = len(kamailio.requests())
    result = recorder.runpytest(f"--sipflow-registrar={kamailio.registrar('tls')}",
                                "--sipflow-transport=tls", "--sipflow-tls-insecure")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "sipflow: TLS certificates are NOT verified (--sipflow-tls-insecure)"])
    run = kamailio.requests()[seen:]
    assert {(r.method, r.proto) for r in run if r.from_user == user(1)} >= {("REGISTER", "tls"),
                                                                           ("INVITE", "tls")}
    assert_unregistered(kamailio, user(1), user(2))


# -- xdist --------------------------------------------------------------------------------------


def test_xdist_workers_use_their_own_accounts(kamailio: KamailioServer,
                                               sipflow_pytester: pytest.Pytester,
                                               clean: str) -> None:
    """``-n 2 --dist each``: both workers run both files at once, each as 10<worker>1/2."""
    def worker_phone(node_id: str, slot: int) -> dict[str, Any]:
        return instance(node_id, "10${SIPFLOW_WORKER}" + str(slot),
                        password="${PBX_PW_100" + str(slot) + "}", **at(kamailio))

    for name in ("one", "two"):
        sipflow_pytester.makefile(".sipflow.json", **{name: call_and_hang_up(
            worker_phone("alice", 1), worker_phone("bob", 2))})
    seen = len(kamailio.requests())
    result = sipflow_pytester.runpytest_subprocess("-n", "2", "--dist", "each",
                                                   "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    callers = {(r.from_user, r.ruri_user) for r in kamailio.requests()[seen:]
               if r.method == "INVITE"}
    assert {("1001", "1002"), ("1011", "1012")} <= callers, callers
    assert_unregistered(kamailio, "1001", "1002", "1011", "1012")


# -- the Python API ---------------------------------------------------------------------------

PYTHON_TESTS = '''
import os
import pytest
from pytest_sipflow.api.ua import SipActionError

W = os.environ["SIPFLOW_TEST_W"]
SERVER = os.environ["SIPFLOW_TEST_REGISTRAR"]  # the UDP address of the test Kamailio
A, B, C = f"10{W}1", f"10{W}2", f"10{W}3"
PW = {u: os.environ["PBX_PW_" + u] for u in (A, B, C)}


def test_register_and_call_through_the_server(sip_instance):
    alice = sip_instance("alice", A, registrar=SERVER, password=PW[A])
    bob = sip_instance("bob", B, registrar=SERVER, transport="tcp", password=PW[B])
    assert alice.uri == f"sip:{A}@127.0.0.1" and bob.account.transport == "TCP"
    out = alice.call(B)                      # a dn goes through the server
    inc = bob.wait_incoming()
    inc.answer()
    out.wait_answered()
    out.send_dtmf("7", method="info")
    assert inc.wait_dtmf("7") == "7"
    out.release()
    inc.wait_disconnected()
    assert bob.send_message(alice, "hi alice") == 200
    assert alice.wait_message("^hi").body == "hi alice"


def test_wrong_password_raises_naming_instance_and_code(sip_instance):
    with pytest.raises(SipActionError) as info:
        sip_instance("mallory", C, registrar=SERVER, password="not-" + PW[C])
    assert "registration of instance 'mallory'" in str(info.value)
    assert "401 Unauthorized" in str(info.value)


def test_register_unregister_and_the_options_defaults(sip_instance):
    # no registrar here: --sipflow-registrar / --sipflow-transport of the run
    carol = sip_instance("carol", C, password="wrong", register=False)
    assert carol.account.server == SERVER and carol.account.transport == "TCP"
    assert carol.register(expected=401) == 401
    with pytest.raises(SipActionError, match="REGISTER answered 401.*expected 2xx"):
        carol.register()
    dave = sip_instance("dave", A, password=PW[A], register=False)
    assert dave.register() == 200
    assert dave.unregister() == 200
    assert dave.register(headers={"X-Sipflow": "again"}) == 200   # left to the clean-up
'''


def test_sip_instance_registers_and_calls_through_the_server(
        kamailio: KamailioServer, sipflow_pytester: pytest.Pytester, clean: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIPFLOW_TEST_W", W)
    sipflow_pytester.makepyfile(test_api=PYTHON_TESTS)
    seen = len(kamailio.requests())
    result = sipflow_pytester.runpytest(f"--sipflow-registrar={kamailio.registrar('udp')}",
                                        "--sipflow-transport=tcp")
    result.assert_outcomes(passed=3)
    run = kamailio.requests()[seen:]
    assert (user(1), user(2), "udp") in {(r.from_user, r.ruri_user, r.proto) for r in run
                                         if r.method == "INVITE"}
    assert {(user(2), "tcp"), (user(3), "tcp")} <= {(r.from_user, r.proto) for r in run
                                                    if r.method == "REGISTER"}
    assert_unregistered(kamailio, user(1), user(2))
    assert kamailio.registrations().get(user(3), 0) == 0


def test_the_docs_real_mode_example_runs(kamailio: KamailioServer,
                                         sipflow_pytester: pytest.Pytester, clean: str) -> None:
    text = (REPO / "docs" / "sip_instance.md").read_text()
    (code,) = re.findall(r"```python real-mode\n(.*?)```", text, flags=re.S)
    sipflow_pytester.makepyfile(test_example=code)
    result = sipflow_pytester.runpytest(f"--sipflow-registrar={kamailio.registrar('udp')}")
    result.assert_outcomes(passed=2)
    assert_unregistered(kamailio, "1001", "1002")
