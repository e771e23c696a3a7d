"""Agents forked from the fork server: crash reports, reaping, parent death, parallel start.

Ports: test_agent's slot slice (SIP) and RTP area 11, upper half (test_agent cycles the
lower blocks and closes its agents after each test).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import SLOT, own_rtp_base
from pytest_sipflow.agent import AgentCrashed
from pytest_sipflow.agent.client import Agent
from pytest_sipflow.agent.forkserver import ForkServer
from pytest_sipflow.agent.pool import AgentPool
from pytest_sipflow.agent.ports import PortPlan

REPO = Path(__file__).resolve().parents[1]


def _gone(pid: int) -> bool:
    """No process, or a zombie of init (we are not its parent): nothing of ours is left."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return True
    return fields[0] in ("Z", "X") and int(fields[1]) != os.getpid()


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_forked_agents_report_crashes_and_every_process_is_reaped() -> None:
    before_fds, before_threads = _fds(), set(threading.enumerate())
    server = ForkServer()
    agents = [Agent(name=f"fork{i}", forks=server) for i in range(3)]
    for ag in agents:
        ag.wait_ready()
    pids = [ag.pid for ag in agents]
    assert len(set(pids)) == 3 and server.pid not in pids
    assert all(ag.agent_pid == ag.pid for ag in agents)
    with pytest.raises(AgentCrashed) as info:
        agents[0].request("debug_abort", message="simulated pjlib assert")
    assert info.value.returncode == -6
    assert any("simulated pjlib assert" in line for line in info.value.stderr_tail)
    agents[1].kill()
    deadline = time.monotonic() + 10
    while agents[1].alive and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(AgentCrashed) as killed:
        agents[1].request("ping", timeout=5)
    assert killed.value.returncode == -9
    assert agents[2].request("ping")["pid"] == agents[2].pid  # the others live on
    for ag in agents:
        ag.close()
    assert agents[2]._proc.returncode == 0
    server.close()
    assert server._proc.returncode == 0
    for pid in pids + [server.pid]:
        assert not Path(f"/proc/{pid}").exists(), f"pid {pid} not reaped"
    assert set(threading.enumerate()) - before_threads == set()
    assert _fds() - before_fds == set()


def test_fork_server_and_its_agents_exit_when_the_parent_dies(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from pytest_sipflow.agent.client import Agent\n"
        "from pytest_sipflow.agent.forkserver import ForkServer\n"
        "server = ForkServer()\n"
        "agents = [Agent(name=f'orphan{i}', forks=server) for i in range(2)]\n"
        "[a.wait_ready() for a in agents]\n"
        "print(server.pid, *[a.pid for a in agents], flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 3
        parent.kill()
        parent.wait()
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    deadline = time.monotonic() + 10
    while not all(_gone(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in pids if not _gone(p)] == [], "outlived their parent"


def test_pool_starts_forked_agents_at_once_on_distinct_ports() -> None:
    plan = PortPlan(sip_base=15100 + 180 * SLOT + 120, sip_range=20,
                    rtp_base=own_rtp_base(11) + 200)
    pool = AgentPool(plan, name="fk")
    try:
        agents = pool.acquire(6)
        ports = [ag.sip_port for ag in agents]
        assert None not in ports and len(set(ports)) == 6
        forks = pool._forks
        assert forks is not None and all(ag._proc.__class__.__name__ == "ForkedProcess"
                                         for ag in agents)
        pids = [ag.pid for ag in agents]
        for ag in agents:
            pool.release(ag, True)
    finally:
        pool.close()
    for pid in pids + [forks.pid]:
        assert not Path(f"/proc/{pid}").exists(), f"pid {pid} not reaped"


def test_a_fast_suite_rotates_each_agent_into_every_fourth_scenario_at_most() -> None:
    # Bug: two spare agents per instance put each agent in every second basic call; at
    # ~5 ms a call it met pjsip's socket table limit (28 calls' sockets, freed 500 ms
    # after each call) and the next call waited ~0.3 s: a third of a 200-call run.
    plan = PortPlan(sip_base=15100 + 180 * SLOT + 120, sip_range=20,
                    rtp_base=own_rtp_base(11) + 200)
    pool = AgentPool(plan, name="fk")
    try:
        pool.prestart(2)
        pool.settle()  # once warm: the set in use and three spare sets
        last_use: dict[int, int] = {}
        gaps: list[int] = []
        for turn in range(12):
            agents = pool.acquire(2)
            for ag in agents:
                if ag.pid in last_use:
                    gaps.append(turn - last_use[ag.pid])
                last_use[ag.pid] = turn
            for ag in agents:
                pool.release(ag, True)
            pool.trim(2)  # what the plugin does between items
        assert gaps and min(gaps) >= 4, gaps
        assert pool.started == 8, "the spares were started once, then reused"
    finally:
        pool.close()


def test_agents_get_a_tz_that_spares_a_stat_per_log_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # Bug: pj_log's localtime() stat()ed /etc/localtime for each of ~45 log entries per
    # call (glibc without TZ): ~5 % of an agent's CPU per call.
    from pytest_sipflow.agent.forkserver import child_env

    monkeypatch.delenv("TZ", raising=False)
    assert child_env()["TZ"] == ":/etc/localtime"
    monkeypatch.setenv("TZ", "Europe/Vienna")
    assert child_env()["TZ"] == "Europe/Vienna", "a user's own TZ is kept"
