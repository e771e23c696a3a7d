"""A server process that cannot outlive its test: parent-death signal, whole-group reaping."""

from __future__ import annotations

import signal
from pathlib import Path


def terminate_with_parent() -> None:
    """In the child before exec: SIGTERM when the thread that started it dies (Linux).

    A test process killed outright (SIGKILL, xdist tearing a worker down) then leaves no
    Kamailio behind. Start servers from a thread that lives as long as they do.
    """
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def group_pids(pgid: int) -> list[int]:
    """Live processes of the group ``pgid`` (a test's proof that nothing was left)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids
