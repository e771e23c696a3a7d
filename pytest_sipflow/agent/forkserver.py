"""Agents forked from one pre-imported process: an agent start costs a fork, not a Python start.

The server (``python -m pytest_sipflow.agent --fork-server --fd N``) imports the pjsua2 side
once and never calls ``libCreate``; each child forked on request creates its own Endpoint
(pjsua2 is never forked after ``libCreate``). The server is single-threaded, reaps every
child and reports its exit status; the parent gets each child's channel, stderr and pidfd.
"""

from __future__ import annotations

import itertools
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

#: Root of the ``pytest_sipflow`` package, put on the server's PYTHONPATH (any cwd/install).
PKG_ROOT = str(Path(__file__).resolve().parents[2])
#: After its parent went away, how long the server waits for its children to exit by
#: themselves (their channels closed too) before it kills and reaps them.
CHILDREN_GRACE_S = 5.0
_MSG = 4096


class ForkServerError(Exception):
    """The fork server could not fork an agent, or is gone."""


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # pj_log stamps every entry (~45 per call, message logs and chatter) with localtime(),
    # and glibc without TZ stat()s /etc/localtime each time (~0.17 of an agent's 3.4 CPU-ms).
    # Naming the same file reads it once; a TZ of the user's own is kept.
    env.setdefault("TZ", ":/etc/localtime")
    return env


# ------------------------------------------------------------------------ parent side


class ForkedProcess:
    """A child of the fork server, with the ``Popen`` methods the client uses."""

    def __init__(self, server: "ForkServer", pid: int, pidfd: int, stderr_fd: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.stderr = os.fdopen(stderr_fd, "rb")
        self._server = server
        self._pidfd = pidfd
        self._exited = threading.Event()

    def _set_exit(self, status: int | None) -> None:
        self.returncode = status
        self._exited.set()

    def poll(self) -> int | None:
        if not self._exited.is_set() and self._server.lost and self._pid_gone(0):
            self._set_exit(None)  # its reaper is gone: the exit status is lost
        return self.returncode

    @property
    def running(self) -> bool:
        self.poll()
        return not self._exited.is_set()

    def wait(self, timeout: float | None = None) -> int | None:
        if not self._exited.wait(timeout if not self._server.lost else 0):
            if not (self._server.lost and self._pid_gone(timeout)):
                raise subprocess.TimeoutExpired(f"agent pid {self.pid}", timeout or 0)
            self._set_exit(None)
        return self.returncode

    def kill(self) -> None:
        """SIGKILL through the pidfd: never a recycled pid."""
        if self._exited.is_set() or self._pidfd < 0:
            return
        try:
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        """Release the pidfd (the stderr stream is the client's to close)."""
        if self._pidfd >= 0:
            os.close(self._pidfd)
            self._pidfd = -1

    def _pid_gone(self, timeout: float | None) -> bool:
        if self._pidfd < 0:
            return True
        ready, _, _ = select.select([self._pidfd], [], [], timeout)
        return bool(ready)


class ForkServer:
    """Parent-side handle: start the server once, then ``spawn`` agents from it."""

    def __init__(self, python: str = sys.executable) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = parent
        self._errors = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                [python, "-m", "pytest_sipflow.agent", "--fork-server", "--fd", str(child.fileno())],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._errors,
                pass_fds=(child.fileno(),), env=child_env())
        except BaseException:
            parent.close()
            self._errors.close()
            raise
        finally:
            child.close()
        self.pid = self._proc.pid
        self.lost = False
        self._lock = threading.Lock()
        self._tokens = itertools.count(1)
        self._waiting: dict[int, list[Any]] = {}
        self._children: dict[int, ForkedProcess] = {}
        self._early_exits: dict[int, int | None] = {}
        self._reader = threading.Thread(target=self._read, name="sipflow-forkserver", daemon=True)
        self._reader.start()

    def spawn(self, name: str, timeout: float = 15.0) -> tuple[ForkedProcess, socket.socket]:
        """Fork one agent; returns its process handle and the parent end of its channel."""
        token = next(self._tokens)
        slot: list[Any] = [threading.Event(), None]
        with self._lock:
            if self.lost:
                raise ForkServerError(self._lost_text())
            self._waiting[token] = slot
        try:
            self._sock.send(json.dumps({"op": "fork", "name": name, "token": token}).encode())
        except OSError as exc:
            with self._lock:
                self._waiting.pop(token, None)
            raise ForkServerError(f"fork server unreachable: {exc}") from None
        if not slot[0].wait(timeout):
            with self._lock:
                self._waiting.pop(token, None)
            raise ForkServerError(f"fork server did not fork agent {name} within {timeout}s")
        result = slot[1]
        if isinstance(result, str):
            raise ForkServerError(result)
        return result

    def close(self, timeout: float = 5.0) -> None:
        """End the server (its agents should be closed first) and reap it."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._reader is not threading.current_thread():
            self._reader.join(5.0)
        self._sock.close()
        self._errors.close()

    @property
    def alive(self) -> bool:
        return not self.lost and self._proc.poll() is None

    def _lost_text(self) -> str:
        try:
            self._errors.seek(0)
            tail = self._errors.read()[-2000:].decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            tail = ""
        rc = self._proc.poll()
        return (f"the agent fork server (pid {self.pid}) is gone"
                + (f" (exit code {rc})" if rc is not None else "")
                + (f"; its stderr:\n{tail}" if tail else ""))

    def _read(self) -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self._sock, _MSG, 3)
            except OSError:
                break
            if not data:
                break
            msg = json.loads(data)
            if "exit" in msg:
                self._on_exit(int(msg["exit"]), msg.get("status"))
                continue
            with self._lock:
                slot = self._waiting.pop(msg.get("token"), None)
            if "error" in msg or len(fds) != 3:
                for fd in fds:
                    os.close(fd)
                result: Any = f"fork server: {msg.get('error', 'reply without its 3 fds')}"
            else:
                proc = ForkedProcess(self, int(msg["pid"]), fds[2], fds[1])
                with self._lock:
                    self._children[proc.pid] = proc
                    early = self._early_exits.pop(proc.pid, "none")
                if early != "none":
                    proc._set_exit(early)  # type: ignore[arg-type]
                result = (proc, socket.socket(fileno=fds[0]))
            if slot is None:  # its caller gave up waiting: do not leak the child
                if not isinstance(result, str):
                    result[0].kill()
                    result[0].stderr.close()
                    result[0].close()
                    result[1].close()
                continue
            slot[1] = result
            slot[0].set()
        with self._lock:
            self.lost = True
            waiting, self._waiting = self._waiting, {}
        for slot in waiting.values():
            slot[1] = self._lost_text()
            slot[0].set()

    def _on_exit(self, pid: int, status: int | None) -> None:
        with self._lock:
            proc = self._children.pop(pid, None)
            if proc is None:
                self._early_exits[pid] = status
        if proc is not None:
            proc._set_exit(status)


# ------------------------------------------------------------------------ server side


def serve(fd: int) -> int:
    """The server process: pre-import, then fork agents and reap them until EOF."""
    import gc

    gc.disable()  # as in every agent: pjsua2 objects are collected explicitly
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    from .pj import runtime  # pjsua2 loaded once for every child, no libCreate

    gc.freeze()
    ctl = socket.socket(fileno=fd)
    children: dict[int, int] = {}  # pidfd → pid
    poller = select.poll()
    poller.register(ctl.fileno(), select.POLLIN)
    open_ctl = True
    deadline: float | None = None
    while children or open_ctl:
        wait_ms = None if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
        for ready, _ in poller.poll(wait_ms):
            if ready == ctl.fileno():
                data = ctl.recv(_MSG) if open_ctl else b""
                if not data:
                    open_ctl = False
                    poller.unregister(ctl.fileno())
                    deadline = time.monotonic() + CHILDREN_GRACE_S
                    continue
                _fork_one(ctl, json.loads(data), runtime, children, poller)
            elif ready in children:
                _reap(ctl if open_ctl else None, ready, children, poller)
        if deadline is not None and time.monotonic() >= deadline:
            for pidfd in list(children):
                try:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                _reap(None, pidfd, children, poller)
    return 0


def _fork_one(ctl: socket.socket, req: dict[str, Any], runtime: Any,
              children: dict[int, int], poller: "select.poll") -> None:
    token, name = req.get("token"), str(req.get("name", "agent"))
    chan_parent, chan_child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    err_r, err_w = os.pipe()
    try:
        pid = os.fork()
    except OSError as exc:
        for fd in (err_r, err_w):
            os.close(fd)
        chan_parent.close()
        chan_child.close()
        ctl.send(json.dumps({"token": token, "error": f"fork failed: {exc}"}).encode())
        return
    if pid == 0:  # the agent
        try:
            os.dup2(err_w, 2)
            keep = chan_child.fileno()
            os.closerange(3, keep)
            os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
            signal.signal(signal.SIGINT, signal.default_int_handler)
            runtime.serve(socket.socket(fileno=keep), name)
        finally:
            os._exit(70)
    pidfd = os.pidfd_open(pid)
    children[pidfd] = pid
    poller.register(pidfd, select.POLLIN)
    os.close(err_w)
    chan_child.close()
    try:
        socket.send_fds(ctl, [json.dumps({"token": token, "pid": pid}).encode()],
                        [chan_parent.fileno(), err_r, pidfd])
    except OSError:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)  # nobody to hand it to
    finally:
        chan_parent.close()
        os.close(err_r)


def _reap(ctl: socket.socket | None, pidfd: int, children: dict[int, int],
          poller: "select.poll") -> None:
    pid = children.pop(pidfd)
    poller.unregister(pidfd)
    _, status = os.waitpid(pid, 0)
    os.close(pidfd)
    if ctl is not None:
        try:
            ctl.send(json.dumps({"exit": pid, "status": os.waitstatus_to_exitcode(status)}).encode())
        except OSError:
            pass
