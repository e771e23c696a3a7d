"""What one pytest process does around its sessions: the agents' fork server started
while pytest collects, and the garbage collector frozen when the outermost session ends."""

from __future__ import annotations

import gc

import pytest

from .keys import session_key

#: pytest sessions configured and not yet unconfigured in this process (a pytester inline
#: run nests one in another)
_ACTIVE = [0]


def session_began() -> None:
    _ACTIVE[0] += 1
    if _ACTIVE[0] == 1:
        gc.unfreeze()  # an earlier session of this process froze its objects (see below)


def session_ended() -> None:
    _ACTIVE[0] -= 1
    if _ACTIVE[0] == 0:
        # The outermost session is over: the interpreter's exit would now run several full
        # garbage collections over everything pytest, pydantic and the results built
        # (~0.4 s per process, each xdist worker too). Frozen objects are skipped.
        gc.freeze()


def start_fork_server(config: pytest.Config) -> None:
    """At the first scenario file: the agents' fork server imports while pytest collects.
    Not where no item runs (``--collect-only``, the xdist controller)."""
    session = config.stash[session_key]
    if session.has_pool or config.option.collectonly:
        return
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput"):
        return
    session.pool.start_fork_server()
