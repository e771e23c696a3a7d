"""The stop path of the foreign-program controllers, on programs that misbehave."""

from __future__ import annotations

import itertools
import socket
import time
from pathlib import Path

import pytest

from pytest_sipflow.testing import process
from pytest_sipflow.testing.process import (ForeignProcess, ForeignProcessError, claim_media_block,
                                              free_port_block, group_pids)


class Stubborn(ForeignProcess):
    """A shell that ignores SIGTERM and leaves a child of its own behind."""

    program = "stubborn"

    def start(self) -> "Stubborn":
        self._prepare_dir()
        self._spawn(["sh", "-c", "trap '' TERM; sleep 30 & echo ready; wait"])
        self.wait_log(r"^ready$", timeout=5)
        return self


def test_stop_ends_a_program_that_ignores_sigterm_and_its_children(tmp_path: Path) -> None:
    program = Stubborn(tmp_path / "s", stop_timeout=0.3).start()
    pid = program.pid
    assert len(group_pids(pid)) == 2  # the shell and its sleep
    began = time.monotonic()
    program.stop()
    assert time.monotonic() - began < 5 * 3 * 0.3  # quit, SIGTERM, SIGKILL: each bounded
    assert not group_pids(pid)
    assert not Path(f"/proc/{pid}").exists()
    assert program.log_text() == "ready\n"  # the log outlives the program


def test_a_missing_program_is_named(tmp_path: Path) -> None:
    class Missing(ForeignProcess):
        program = "missing"

        def start(self) -> "Missing":
            self._prepare_dir()
            self._spawn(["sipflow-no-such-phone"])
            return self

    with pytest.raises(ForeignProcessError, match="sipflow-no-such-phone is not installed"):
        Missing(tmp_path / "m").start()


def test_a_log_line_that_never_comes_fails_with_the_tail(tmp_path: Path) -> None:
    program = Stubborn(tmp_path / "s", stop_timeout=0.3).start()
    try:
        with pytest.raises(ForeignProcessError, match=r"no log line /never/ .*within 0.2 s"
                                                      r"(.|\n)*ready"):
            program.wait_log("never", timeout=0.2)
    finally:
        program.stop()


def test_port_blocks_try_every_start_and_media_blocks_ignore_tcp(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Bug: two suites at once; the relay's 100 RTP ports were refused because a client's
    # TCP port in TIME_WAIT sat in the area, and only 4 of the area's starts were tried.
    # The machine's real ports are not ours to fill: which ports are busy is faked.
    base = 30000
    busy = {socket.SOCK_DGRAM: {base + 19}, socket.SOCK_STREAM: {base + 25}}
    monkeypatch.setattr(process, "bindable",
                        lambda port, kind, host="127.0.0.1": port not in busy[kind])
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    # the one block of 20 clear of UDP port 19 holds TCP port 25: fine for RTP, whichever
    # start the rotation picks first
    assert {free_port_block(20, base, 40, udp_only=True) for _ in range(8)} == {base + 20}
    with pytest.raises(ForeignProcessError, match="no 20 consecutive free ports in 30000-30039"):
        free_port_block(20, base, 40)  # a SIP block needs TCP too


def test_media_blocks_are_claimed_so_two_relays_never_share_ports(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Bug: two suites at once gave their rtpengines overlapping ranges; rtpengine binds a
    # call's ports only during the call (SO_REUSEADDR), so both bound 48070 and each
    # relayed the other's RTP: one-way audio in both runs.
    monkeypatch.setattr(process, "bindable", lambda port, kind, host="127.0.0.1": True)
    monkeypatch.setattr(process, "_rotation", itertools.repeat(0))  # both start alike
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    first, claim = claim_media_block(100, 30400, 400)
    with claim:
        second, other = claim_media_block(100, 30400, 400)  # the media ports look free
        with other:
            assert abs(first - second) >= 100, (first, second)
            assert {first, second} <= {30400, 30500, 30600, 30700}
