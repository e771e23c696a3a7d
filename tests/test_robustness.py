"""Parallel runs, timeouts, crashes and interrupts: subprocess runs as users run pytest."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import answered_call, basic_call, chain, event, instance, scenario, interrupt_when_talking
from test_plugin import processes_with_token


def run_pytest(path: Path, *args: str, timeout: float = 180) -> tuple[subprocess.CompletedProcess[str], str]:
    token = uuid.uuid4().hex
    env = dict(os.environ, SIPFLOW_TEST_TOKEN=token)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=path, env=env, capture_output=True, text=True, timeout=timeout)
    return proc, token


def hanging() -> str:
    nodes = [instance("bob", "200"), event("forever", "INCOMING", "bob", timeout=60000)]
    return scenario(nodes, chain("bob", "forever"), name="hangs", timeout=120000)


@pytest.mark.parametrize("workers", ["2", "4"])
def test_xdist_workers_share_nothing_even_with_a_foreign_port_taken(
        sipflow_pytester: pytest.Pytester, workers: str) -> None:
    for i in range(22):
        sipflow_pytester.makefile(".sipflow.json", **{f"call{i:02d}": basic_call()})
    sipflow_pytester.makeconftest("""
        import os, re
        def pytest_sipflow_action_log(item, event):
            m = re.search(r"ready as sip:\\d+@127.0.0.1:(\\d+)", event.message)
            if m:
                with open(f"ports-{os.environ['PYTEST_XDIST_WORKER']}.txt", "a") as f:
                    f.write(m.group(1) + "\\n")
    """)
    ini = (sipflow_pytester.path / "tox.ini").read_text()
    base = int(ini.split("sipflow_port_base = ")[1].split()[0])
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind(("127.0.0.1", base))  # gw0's first SIP port, held by "another program"
    try:
        proc, token = run_pytest(sipflow_pytester.path, "-n", workers, "-q")
    finally:
        blocker.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "22 passed" in proc.stdout
    assert not processes_with_token(token)
    used = {f.stem[len("ports-"):]: {int(p) for p in f.read_text().split()}
            for f in sipflow_pytester.path.glob("ports-gw*.txt")}
    assert len(used) == int(workers), used
    for worker, ports in used.items():
        index = int(worker[2:])
        block = range(base + index * 40, base + (index + 1) * 40)
        assert all(p in block for p in ports), (worker, ports, block)
    assert base not in used.get("gw0", set()), "the foreign socket's port was skipped"


def test_failure_report_survives_xdist(sipflow_pytester: pytest.Pytester) -> None:
    nodes = [instance("bob", "200"), event("wait", "INCOMING", "bob", timeout=200)]
    sipflow_pytester.makefile(".sipflow.json", lonely=scenario(nodes, chain("bob", "wait")),
                              ok=basic_call())
    proc, _ = run_pytest(sipflow_pytester.path, "-n", "2")
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout
    for line in ("failing node: 'wait' (instance 'bob', INCOMING)", "expected: INCOMING",
                 "bob: wait [INCOMING FAILED"):
        assert line in proc.stdout, proc.stdout


def test_no_free_port_is_a_clear_error(sipflow_pytester: pytest.Pytester,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # the inner run blocks worker 0's ports
    sipflow_pytester.makefile(".sipflow.json", call=basic_call())
    ini = (sipflow_pytester.path / "tox.ini").read_text()
    base = int(ini.split("sipflow_port_base = ")[1].split()[0])
    blockers = []
    for port in range(base, base + 4, 2):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", port))
        blockers.append(s)
    try:
        proc, token = run_pytest(sipflow_pytester.path, "--sipflow-port-range", "4")
    finally:
        for s in blockers:
            s.close()
    assert "1 failed" in proc.stdout, proc.stdout
    assert f"no free SIP port in SIP 127.0.0.1:{base}-{base + 2}" in proc.stdout, proc.stdout
    assert not processes_with_token(token)


def test_pytest_timeout_stops_a_hung_scenario_and_the_next_runs(
        sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", a_hangs=hanging(), b_after=basic_call())
    start = time.monotonic()
    proc, token = run_pytest(sipflow_pytester.path, "--timeout", "2")
    assert time.monotonic() - start < 30
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout + proc.stderr
    assert "the run was stopped (Timeout" in proc.stdout, proc.stdout
    assert "while node 'forever' was running" in proc.stdout, proc.stdout
    assert not processes_with_token(token)


def test_scenario_deadline_works_without_pytest_timeout(sipflow_pytester: pytest.Pytester) -> None:
    nodes = [instance("bob", "200"), event("forever", "INCOMING", "bob", timeout=60000)]
    sipflow_pytester.makefile(".sipflow.json", a_hangs=scenario(nodes, chain("bob", "forever")),
                              b_after=basic_call())
    start = time.monotonic()
    proc, _ = run_pytest(sipflow_pytester.path, "-p", "no:timeout",
                         "--sipflow-scenario-timeout", "500")
    assert time.monotonic() - start < 30
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout
    assert "reason: scenario deadline of 500 ms exceeded while node 'forever' was running" \
        in proc.stdout, proc.stdout


def test_agent_abort_fails_only_its_item_with_stderr(sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makeconftest("""
        import re
        AGENTS = {}
        def pytest_sipflow_action_log(item, event):
            m = re.search(r"agent (\\S+) \\(pid", event.message)
            if m and event.node_id is None:
                AGENTS[event.instance_id] = m.group(1)
        def pytest_sipflow_node_state(item, event):
            if event.node_id == "doomed" and event.new_state == "running":
                from pytest_sipflow.glue.keys import session_key
                pool = item.config.stash[session_key].pool
                agent = next(a for a in pool._busy if a.name == AGENTS["b"])
                try:
                    agent.request("debug_abort", timeout=1, message="simulated pjlib assert")
                except Exception:
                    pass
    """)
    sipflow_pytester.makefile(".sipflow.json", a_abort=answered_call("doomed"),
                              b_after=basic_call())
    proc, token = run_pytest(sipflow_pytester.path)
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout + proc.stderr
    assert "the SIP agent of instance 'b' died (exit code -6)" in proc.stdout, proc.stdout
    assert "agent stderr:" in proc.stdout and "simulated pjlib assert" in proc.stdout, proc.stdout
    assert not processes_with_token(token)


def test_ctrl_c_releases_calls_and_leaves_no_agent(sipflow_pytester: pytest.Pytester) -> None:
    sipflow_pytester.makefile(".sipflow.json", long=answered_call(
        "bye", talk_ms=30000, wait_ms=30000, name="long"))
    sipflow_pytester.makeconftest("""
        def pytest_sipflow_node_state(item, event):
            if event.node_id == "talk" and event.new_state == "running":
                open("talking", "w").close()
        def pytest_sipflow_scenario_state(item, event):
            if event.state != "running":  # emitted after clean-up released the calls
                with open("ended", "w") as f:
                    f.write(event.state + ": " + event.message)
    """)
    token = uuid.uuid4().hex
    env = dict(os.environ, SIPFLOW_TEST_TOKEN=token)

    def agents_up() -> None:
        assert processes_with_token(token), "the call is up: agents are running"

    out, returncode = interrupt_when_talking(sipflow_pytester.path, env, agents_up)
    assert "KeyboardInterrupt" in out, out
    assert returncode == 2, out
    ended = (sipflow_pytester.path / "ended").read_text()
    # 'talk' (A) and 'bye' (B) start within a millisecond of each other, once the call is
    # up; the report names the one running longest and lists the other.
    assert re.match(r"stopped: the run was stopped \(KeyboardInterrupt\) while node "
                    r"'(talk|bye)' was running \(also running: (bye|talk)\)", ended), ended
    assert not processes_with_token(token)
