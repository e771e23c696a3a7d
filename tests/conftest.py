"""Shared helpers of the test suite: scenario builders and clean-machine checks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_sipflow.agent.pool import AgentPool
from pytest_sipflow.agent.ports import PortPlan
from pytest_sipflow.testing import KamailioServer, available
from support.kamailio import fixed_accounts

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _support_importable() -> Iterator[None]:
    """pytest runs started by a test (pytester subprocesses) import ``support`` too."""
    here = str(Path(__file__).resolve().parent)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYTHONPATH", os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH"))
                                                 if p))
        yield


def instance(node_id: str, dn: str, **data: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "sipInstance", "position": {"x": 0, "y": 0},
            "data": {"label": node_id, "dn": dn, **data}}


def command(node_id: str, name: str, ua: str | None, **data: Any) -> dict[str, Any]:
    body = {"command": name, **data}
    if ua is not None:
        body["sipInstanceId"] = ua
    return {"id": node_id, "type": "command", "data": body}


def event(node_id: str, name: str, ua: str | None, **data: Any) -> dict[str, Any]:
    body = {"event": name, **data}
    if ua is not None:
        body["sipInstanceId"] = ua
    return {"id": node_id, "type": "event", "data": body}


def chain(*ids: str, prefix: str = "") -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{a}->{b}", "source": a, "target": b} for a, b in zip(ids, ids[1:])]


def scenario(nodes: list[dict[str, Any]], edges: list[dict[str, Any]], **top: Any) -> str:
    return json.dumps({**top, "nodes": nodes, "edges": edges}, indent=1)


def basic_call(target: str = "200", **top: Any) -> str:
    """A calls B, B answers, A releases after 50 ms, B sees the BYE."""
    nodes = [instance("a", "100"), instance("b", "200"),
             command("call", "MakeCall", "a", callId="c", targetUri=target),
             event("talk", "TIMEOUT", "a", timeout=50),
             command("bye", "Release", "a", callId="c"),
             event("in", "INCOMING", "b", callId="c", timeout=5000),
             command("answer", "Answer", "b", callId="c"),
             event("gone", "DISCONNECTED", "b", callId="c", timeout=5000)]
    return scenario(nodes, chain("a", "call", "talk", "bye") + chain("b", "in", "answer", "gone"),
                    **top)


def answered_call(last: str, talk_ms: int = 3000, wait_ms: int = 5000, **top: Any) -> str:
    """A calls B, B answers; A then waits ``talk_ms`` while B waits for the end in node ``last``."""
    nodes = [instance("a", "100"), instance("b", "200"),
             command("call", "MakeCall", "a", callId="c", targetUri="200"),
             event("talk", "TIMEOUT", "a", timeout=talk_ms),
             event("in", "INCOMING", "b", callId="c"),
             command("answer", "Answer", "b", callId="c"),
             event(last, "DISCONNECTED", "b", callId="c", timeout=wait_ms)]
    return scenario(nodes, chain("a", "call", "talk") + chain("b", "in", "answer", last), **top)


def agent_pids() -> set[int]:
    """Agent processes of this machine started by this test run (found by their command line)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"pytest_sipflow.agent" in cmdline:
            pids.add(int(entry.name))
    return pids


#: This test process's slot. Every agent pool and pytester run of the suite derives its SIP
#: and RTP ports from it, and a slot is claimed (a lock port held while the process lives),
#: so the processes of two suites on one machine (xdist workers of CI's and a developer's)
#: take different slots while there are enough. A shared RTP port lets one suite's last
#: packets of a call (an RFC 2833 end packet) reach the other's next call: a DTMF digit from
#: nowhere; a shared SIP base makes a test that holds a port on purpose find it taken.
SLOTS = 5
#: One TCP port per slot, held for the life of the process that took the slot.
SLOT_LOCK_BASE = 6990


def _runs_no_tests() -> bool:
    """The pytest-xdist controller (``-n N`` given, not a worker) runs no test: it takes no slot."""
    return "PYTEST_XDIST_WORKER" not in os.environ and any(
        a.startswith(("-n", "--numprocesses")) for a in sys.argv[1:])


def _claim_slot() -> tuple[int, socket.socket | None]:
    """A slot no other running test process holds (the first whose lock port binds),
    starting from one the pid picks; where all are taken, the pid's (ports then retry)."""
    start = os.getpid() % SLOTS
    if _runs_no_tests():
        return start, None
    for i in range(SLOTS):
        slot = (start + i) % SLOTS
        lock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            lock.bind(("127.0.0.1", SLOT_LOCK_BASE + slot))
        except OSError:
            lock.close()
            continue
        return slot, lock
    return start, None


SLOT, _SLOT_LOCK = _claim_slot()
#: RTP areas of 400 ports, one per pool: pytester runs 0-3 (xdist gw0-gw3), test_engine 4
#: and 5, test_call_control 6, test_checks_scenarios 7, test_fuzz 8, test_interop 9-10,
#: test_agent 11.
RTP_AREAS = 12


def own_rtp_base(area: int) -> int:
    """The first port of RTP ``area`` of this process's slot (40000-63999)."""
    return 40000 + (SLOT * RTP_AREAS + area) * 400


def own_pool(sip_base: int, area: int, name: str) -> Iterator[AgentPool]:
    """A test module's agent pool on this slot's SIP and RTP ports, closed at its end."""
    pool = AgentPool(PortPlan(sip_base=sip_base + SLOT * 40, sip_range=40,
                              rtp_base=own_rtp_base(area)), name=name)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def sipflow_pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester whose runs use a port block of their own, away from the outer run's agents."""
    base = 7000 + SLOT * 160  # 4 xdist workers x 40
    pytester.makeini(f"""
        [pytest]
        sipflow_port_base = {base}
        sipflow_rtp_port_base = {own_rtp_base(0)}
        sipflow_port_range = 40
        """)
    return pytester


@pytest.fixture(scope="session")
def kamailio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KamailioServer]:
    """One real Kamailio for the session (this xdist worker's ports), its variables exported.

    pytester runs inherit the ``SIPFLOW_TEST_*`` and ``PBX_PW_*`` variables, so their
    scenario files can write ``"pbxPort": "${SIPFLOW_TEST_UDP_PORT}"``.
    """
    yield from exported_kamailio(tmp_path_factory.mktemp("kamailio"))


def exported_kamailio(workdir: Path) -> Iterator[KamailioServer]:
    """A started Kamailio with the fixed accounts, its variables in the environment while
    it runs (skips where Kamailio cannot run)."""
    reason = available()
    if reason:
        pytest.skip(reason)
    server = KamailioServer(fixed_accounts(), workdir=workdir)
    with server, pytest.MonkeyPatch.context() as env:
        for name, value in server.environment().items():
            env.setenv(name, value)
        yield server


def interrupt_when_talking(folder: Path, env: dict[str, str],
                           check: Callable[[], None] | None = None) -> tuple[str, int]:
    """Run pytest in ``folder``, press Ctrl-C (SIGINT) once a conftest hook has created the
    file ``talking``; returns (output, exit code). ``check`` runs just before the signal."""
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
                            cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120  # generous: a loaded machine starts pytest slowly
        while not (folder / "talking").exists() and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        assert (folder / "talking").exists(), "the call never came up"
        if check is not None:
            check()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out, proc.returncode
