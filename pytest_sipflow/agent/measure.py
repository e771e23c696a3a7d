"""CPU cost of a process, for the idle-agent test and the benchmark (Linux /proc only).

Kept free of pjsua2 and pytest: the benchmark and the test suite both import it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """CPU time (user+system) used so far by every thread of ``pid``.

    Summed from ``/proc/<pid>/task/*/schedstat`` (nanoseconds, so a 5 s sample can
    resolve 0.01 %); falls back to ``/proc/<pid>/stat`` (clock ticks, 10 ms) where
    schedstat is missing.
    """
    total = 0
    found = False
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
            found = True
        except (OSError, ValueError, IndexError):
            continue
    if found:
        return total / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def cpu_percent(pid: int, seconds: float = 5.0) -> float:
    """Share of one core used by ``pid`` over the next ``seconds`` (100.0 = a full core)."""
    before, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    after, t1 = cpu_seconds(pid), time.monotonic()
    return 100.0 * (after - before) / (t1 - t0)
