"""A foreign program (another SIP phone, a media relay) run by a test and ended by its pid.

Each program gets its own process group, a work directory (a temporary one unless given)
and its console output in a log file there: the log is the proof of what the program did.
``stop()`` asks it to quit, then SIGTERM, then SIGKILL to the group, every wait bounded.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pytest_sipflow.errors import SipflowError

T = TypeVar("T")


class ForeignProcessError(SipflowError):
    """A foreign program did not start, did not answer, or its log lacks what was awaited
    (the message ends with the tail of its log)."""


def group_pids(pgid: int) -> list[int]:
    """Live (not zombie) processes of the group ``pgid``: a test's proof nothing is left."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(stat.parent.name))
    return pids


def kill_group(pgid: int) -> None:
    """SIGKILL every member of the process group ``pgid`` (ours: a session we started)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def end_group(pgid: int, timeout: float) -> None:
    """Wait (bounded) for the group ``pgid`` to go; SIGKILL it when a member lingers."""
    deadline = time.monotonic() + timeout
    while group_pids(pgid):
        if time.monotonic() > deadline:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + timeout
        time.sleep(0.01)


def bindable(port: int, kind: int, host: str = "127.0.0.1") -> bool:
    """Whether a ``kind`` (UDP/TCP) socket can bind ``host:port`` right now."""
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether both UDP and TCP ``port`` can be bound on ``host`` right now."""
    return all(bindable(port, kind, host) for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM))


def terminate(proc: "subprocess.Popen[Any]", timeout: float) -> bool:
    """SIGTERM, a bounded wait, then SIGKILL: the process is gone when this returns.
    True when it had to be killed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
            return True
    return False


_rotation = itertools.count(os.getpid())  # two runs at once start at different blocks


def free_port_block(count: int, base: int, span: int, udp_only: bool = False) -> int:
    """The first of ``count`` consecutive free ports (UDP and TCP, or UDP only for media)
    in this xdist worker's ``span`` ports from ``base``; each call starts its search further
    on, so a port just released is not taken again at once. Every start in the span is
    tried: another run's relay or a client's ephemeral port may hold a few."""
    digits = re.sub(r"\D", "", os.environ.get("PYTEST_XDIST_WORKER", ""))
    first = base + int(digits or 0) * span
    free = [(bindable(p, socket.SOCK_DGRAM) if udp_only else port_free(p))
            for p in range(first, first + span)]
    starts = span - count + 1
    offset = (next(_rotation) * count) % starts
    for i in range(starts):
        start = (offset + i) % starts
        if all(free[start:start + count]):
            return first + start
    raise ForeignProcessError(f"no {count} consecutive free ports in {first}-{first + span - 1}")


def claim_media_block(count: int, base: int, span: int) -> tuple[int, socket.socket]:
    """A block of ``count`` UDP ports for a media relay in this xdist worker's ``span``,
    and a claim on it to hold while the relay runs: a TCP socket bound to the block's
    first port. rtpengine binds a call's ports only during the call, and with
    SO_REUSEADDR, so a free-port check cannot see another run's relay: two relays on
    one range deliver each other's RTP. Blocks are aligned, so two claims never overlap."""
    digits = re.sub(r"\D", "", os.environ.get("PYTEST_XDIST_WORKER", ""))
    first = base + int(digits or 0) * span
    blocks = span // count
    offset = next(_rotation)
    for i in range(blocks):
        start = first + ((offset + i) % blocks) * count
        claim = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            claim.bind(("127.0.0.1", start))
        except OSError:
            claim.close()
            continue
        if all(bindable(p, socket.SOCK_DGRAM) for p in range(start, start + count)):
            return start, claim
        claim.close()
    raise ForeignProcessError(f"no unclaimed block of {count} ports in {first}-{first + span - 1}")


try:  # loaded here: an import in the forked child could deadlock on another thread's lock
    _LIBC: Any = ctypes.CDLL(None, use_errno=True)
except OSError:
    _LIBC = None


def terminate_with_parent() -> None:
    """In the child before exec: SIGTERM when the thread that started it dies (Linux), so a
    test process killed outright leaves no phone behind."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ForeignProcess:
    """Base of the controllers: spawn, log reading with deadlines, bounded stop."""

    program = "program"

    def __init__(self, workdir: str | Path | None = None, start_timeout: float = 10.0,
                 stop_timeout: float = 3.0) -> None:
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._own_dir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else None
        self._proc: subprocess.Popen[Any] | None = None
        self._log_file: Any = None
        self._final_log: str | None = None
        self.pid: int | None = None

    @property
    def log_path(self) -> Path:
        assert self.workdir is not None, "not started"
        return self.workdir / f"{self.program}.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _prepare_dir(self) -> Path:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"sipflow-{self.program}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self.workdir

    def _spawn(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
               stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen[Any]:
        if shutil.which(argv[0]) is None:
            raise ForeignProcessError(f"{argv[0]} is not installed (Debian package; see "
                                      "install.sh)")
        self._log_file = open(self.log_path, "ab", buffering=0)  # noqa: SIM115 - closed in stop
        self._proc = subprocess.Popen(
            list(argv), stdin=stdin, stdout=self._log_file, stderr=subprocess.STDOUT,
            cwd=self.workdir, env=dict(env) if env is not None else None,
            start_new_session=True, preexec_fn=terminate_with_parent)
        self.pid = self._proc.pid
        return self._proc

    def log_text(self) -> str:
        """Everything the program wrote so far (also after stop)."""
        if self._final_log is not None:
            return self._final_log
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, AssertionError):
            return ""

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(empty log)"

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log_text(), re.MULTILINE))

    def wait_until(self, check: Callable[[], T | None], what: str,
                   timeout: float | None = None) -> T:
        """Poll ``check`` until it returns something; a dead program or the deadline raise
        ``ForeignProcessError`` naming ``what`` with the log's tail."""
        limit = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            found = check()
            if found is not None and found is not False:
                return found
            if not self.running:
                raise ForeignProcessError(f"{self.program} exited (code {self._exit_code()}) "
                                          f"before {what}:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise ForeignProcessError(f"{self.program}: no {what} within {limit} s; "
                                          f"log tail:\n{self.tail()}")
            time.sleep(0.02)

    def wait_log(self, pattern: str, count: int = 1, timeout: float = 5.0) -> re.Match[str]:
        """The ``count``-th match of ``pattern`` in the log, waited for."""
        def found() -> re.Match[str] | None:
            matches = list(re.finditer(pattern, self.log_text(), re.MULTILINE))
            return matches[count - 1] if len(matches) >= count else None
        return self.wait_until(found, f"log line /{pattern}/ (#{count})", timeout)

    def _exit_code(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def _ask_to_quit(self) -> None:
        """A polite quit (a command of the program); SIGTERM follows if it is ignored."""

    def stop(self) -> None:
        """Quit, SIGTERM, SIGKILL to the group: each step bounded by ``stop_timeout``."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                self._proc = proc
                self._ask_to_quit()
            except (OSError, ForeignProcessError):
                pass
            finally:
                self._proc = None
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                terminate(proc, self.stop_timeout)
        self._end_group(proc.pid)
        if proc.stdin is not None:
            proc.stdin.close()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self._final_log = self.log_text()
        if self._own_dir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _end_group(self, pgid: int) -> None:
        end_group(pgid, self.stop_timeout)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def start(self) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<{type(self).__name__} {state}>"
