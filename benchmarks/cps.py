"""Max steady calls per second on this machine: sipflow's load run against SIPp's ``-r``.

The same flow for both (A calls B, B answers at once, A hangs up: SIPp's built-in ``uac``
against its ``uas``), on 127.0.0.1, in one run. A rate is *steady* when every call of a
rung of RUNG_S seconds succeeds and the calls end at >= STEADY of the asked rate; the
figure is the highest steady rate of a doubling ladder, then refined halfway up once.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable

from pytest_sipflow.agent.pool import AgentPool
from pytest_sipflow.agent.ports import PortPlan
from pytest_sipflow.core.settings import EngineSettings
from pytest_sipflow.engine.load import LoadRun
from pytest_sipflow.format import graph

RUNG_S = 3.0
STEADY = 0.9
UAS_PORT, UAC_PORT = 15910, 15912


def ladder(attempt: Callable[[float], bool], start: float, stop: float) -> float:
    """Highest rate ``attempt`` holds: doubling from ``start`` up to ``stop``, then the
    midpoint between the last good rung and the first bad one."""
    good, rate = 0.0, start
    while rate <= stop and attempt(rate):
        good, rate = rate, rate * 2
    if good and rate <= stop:
        middle = (good + rate) / 2
        if attempt(middle):
            good = middle
    return good


def sipflow_max_cps(flow: str, concurrency: int = 12, stop: float = 400) -> float:
    g = graph.from_value(__import__("json").loads(flow), "cps.sipflow.json")
    pool = AgentPool(PortPlan(sip_base=18000, sip_range=200, rtp_base=40000), name="cps")
    settings = EngineSettings()
    try:
        LoadRun(g, pool, settings, concurrency * 2, 0, concurrency).run()  # agents started

        def attempt(rate: float) -> bool:
            n = max(1, int(rate * RUNG_S))
            start = time.perf_counter()
            results = LoadRun(g, pool, settings, n, rate, concurrency).run()
            wall = time.perf_counter() - start
            held = all(r.passed for r in results) and n / wall >= STEADY * rate
            print(f"  sipflow {rate:.0f}/s: {n} calls in {wall:.2f} s, "
                  f"{sum(not r.passed for r in results)} failed -> {'steady' if held else 'no'}")
            return held
        return ladder(attempt, 25, stop)
    finally:
        pool.close()


def sipp_max_cps(stop: float = 6400) -> float | None:
    sipp = shutil.which("sipp")
    if sipp is None:
        return None
    uas = subprocess.Popen([sipp, "-sn", "uas", "-i", "127.0.0.1", "-mi", "127.0.0.1",
                            "-p", str(UAS_PORT), "-mp", "16200", "-nostdin"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    try:
        def attempt(rate: float) -> bool:
            n = max(1, int(rate * RUNG_S))
            start = time.perf_counter()
            proc = subprocess.run([sipp, "-sn", "uac", f"127.0.0.1:{UAS_PORT}", "-i",
                                   "127.0.0.1", "-mi", "127.0.0.1", "-p", str(UAC_PORT),
                                   "-mp", "16300", "-r", f"{rate:g}", "-m", str(n), "-nostdin",
                                   "-timeout", "10s", "-timeout_error"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  cwd=Path("/tmp"))
            wall = time.perf_counter() - start
            held = proc.returncode == 0 and n / wall >= STEADY * rate
            print(f"  sipp {rate:.0f}/s: {n} calls in {wall:.2f} s, exit {proc.returncode} "
                  f"-> {'steady' if held else 'no'}")
            return held
        return ladder(attempt, 50, stop)
    finally:
        uas.terminate()
        uas.wait(timeout=10)


def rows(flow: str) -> list[tuple[str, str, str]]:
    ours, theirs = sipflow_max_cps(flow), sipp_max_cps()
    return [("max steady CPS on this machine, sipflow load run (--sipflow-rate, concurrency 12)",
             f"{ours:.0f}/s", ""),
            ("max steady CPS on this machine, `sipp -sn uac -r R` against `sipp -sn uas`",
             f"{theirs:.0f}/s" if theirs is not None else "sipp not installed", "")]
