"""Parent side of an agent: spawn, request/reply, event delivery, crash reporting.

Never imports pjsua2 (a C assert there would abort pytest) nor pytest (the engine and
benchmarks use this too).
"""

from __future__ import annotations

import collections
import itertools
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable

from .forkserver import ForkedProcess, ForkServer, child_env
from .loop import brief
from .protocol import LineReader, LineWriter, ProtocolError

EventSink = Callable[[dict[str, Any]], None]

_STDERR_KEEP = 200


class AgentError(Exception):
    """The agent refused a request (reply ``ok: false``); the message is its error text."""


class AgentCrashed(AgentError):
    """The agent process died or its channel closed; carries exit code and stderr tail."""

    def __init__(self, message: str, returncode: int | None = None,
                 stderr_tail: list[str] | None = None) -> None:
        self.returncode = returncode
        self.stderr_tail = list(stderr_tail or [])
        detail = message
        if returncode is not None:
            detail += f" (exit code {returncode}{_signame(returncode)})"
        if self.stderr_tail:
            detail += "\nlast agent stderr lines:\n  " + "\n  ".join(self.stderr_tail)
        super().__init__(detail)


def _signame(rc: int) -> str:
    if rc < 0:
        try:
            return f", {signal.Signals(-rc).name}"
        except ValueError:
            return ""
    return ""


def _stamp(line: str, last: float) -> float:
    """The monotonic time of an agent log line (``[name 123.456789] ...``); a line
    without one (pjlib's own output, a traceback) keeps the time of the line before it."""
    if line.startswith("["):
        head = line[1:line.find("]")]
        try:
            return float(head.rsplit(" ", 1)[-1])
        except ValueError:
            pass
    return last


class _Pending:
    __slots__ = ("done", "reply", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: dict[str, Any] | None = None
        self.error: BaseException | None = None


class Reply:
    """A sent request whose reply may still be on its way."""

    def __init__(self, agent: "Agent", op: str, req_id: int, pending: _Pending) -> None:
        self._agent, self._op, self._id, self._pending = agent, op, req_id, pending

    def wait(self, timeout: float = 5.0) -> dict[str, Any]:
        """The result; raises AgentError, AgentCrashed or TimeoutError like ``request``."""
        agent, pending = self._agent, self._pending
        if not pending.done.wait(timeout):
            with agent._lock:
                agent._pending.pop(self._id, None)
            if not pending.done.is_set():  # else: raced with the reply
                raise TimeoutError(f"agent {agent.name}: no reply to {self._op!r} within {timeout}s")
        return agent._result(self._op, pending)


class Agent:
    """Handle on one agent process (one SIP user agent): forked by ``forks`` (a fork
    server), else spawned as ``python -m pytest_sipflow.agent``."""

    def __init__(self, name: str = "agent", python: str = sys.executable,
                 forks: ForkServer | None = None) -> None:
        self.name = name
        self.sip_port: int | None = None
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._pending: dict[int, _Pending] = {}
        self._ids = itertools.count(1)
        self._ready = False
        self._dead = False          # channel gone (EOF/error) or process reaped
        self._closing = False       # close() started: no agent_died event
        self._closed = False
        self._death: AgentCrashed | None = None
        self._sink: EventSink | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_KEEP)
        #: (time, request) of the last requests sent: the agent does not log each one to
        #: its stderr (a line per request cost both sides); ``stderr_tail`` merges them in
        self._sent: collections.deque[tuple[float, dict[str, Any]]] = \
            collections.deque(maxlen=_STDERR_KEEP)
        self.agent_pid: int | None = None
        #: the ``configure`` arguments of an account a ``reset`` kept (set by the call core);
        #: any ``configure`` or ``reset`` sent clears it
        self.configured: dict[str, Any] | None = None

        self._proc: subprocess.Popen[bytes] | ForkedProcess
        if forks is not None:
            self._proc, self._sock = forks.spawn(name)
        else:
            self._proc, self._sock = self._spawn(name, python)
        self.pid: int = self._proc.pid
        self._writer = LineWriter(self._sock)
        self._stderr_thread = threading.Thread(
            target=self._stderr_loop, name=f"sipflow-agent-{name}-stderr", daemon=True
        )
        self._reader_thread = threading.Thread(
            target=self._reader_loop, name=f"sipflow-agent-{name}-reader", daemon=True
        )
        self._stderr_thread.start()
        self._reader_thread.start()

    @staticmethod
    def _spawn(name: str, python: str) -> tuple[subprocess.Popen[bytes], socket.socket]:
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proc = subprocess.Popen(
                [python, "-m", "pytest_sipflow.agent", "--fd", str(child_sock.fileno()),
                 "--name", name],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(child_sock.fileno(),),
                start_new_session=False,
                env=child_env(),
            )
        except BaseException:
            parent_sock.close()
            raise
        finally:
            # The child owns its end now; keeping it open here would hide its death.
            child_sock.close()
        return proc, parent_sock

    def _running(self) -> bool:
        proc = self._proc
        return proc.running if isinstance(proc, ForkedProcess) else proc.poll() is None

    # ------------------------------------------------------------------ public API

    def __repr__(self) -> str:
        return f"<Agent {self.name} pid={self.pid} port={self.sip_port} alive={self.alive}>"

    @property
    def alive(self) -> bool:
        return not self._dead and self._running()

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the agent's Endpoint exists. Raises AgentCrashed or TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._ready and not self._dead:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"agent {self.name} not ready after {timeout}s")
                self._cond.wait(left)
            if self._ready:
                return
        raise self._crash_error("agent died before it was ready")

    def request(self, op: str, timeout: float = 5.0, **args: Any) -> dict[str, Any]:
        """Send one request and wait for its reply (thread-safe).

        Must not be called from the event sink: the sink runs on the reader thread,
        which is the one that would deliver the reply.
        """
        return self.send(op, **args).wait(timeout)

    def send(self, op: str, **args: Any) -> "Reply":
        """Send a request without waiting, so several agents can work at once."""
        if threading.current_thread() is self._reader_thread:
            raise RuntimeError("Agent.request() called from the event sink (reader thread)")
        pending = _Pending()
        with self._lock:
            gone = self._dead or self._closed
            if not gone:
                req_id = next(self._ids)
                self._pending[req_id] = pending
        if gone:
            raise self._crash_error(f"agent {self.name} is gone; cannot send {op!r}")
        msg = {"id": req_id, "op": op}
        msg.update(args)
        if op in ("configure", "reset"):
            self.configured = None
        if op != "ping":
            self._sent.append((time.monotonic(), msg))
        try:
            self._writer.send(msg)
        except OSError:
            with self._lock:
                self._pending.pop(req_id, None)
            raise self._crash_error(f"agent {self.name}: channel broken while sending {op!r}")
        return Reply(self, op, req_id, pending)

    def set_event_sink(self, sink: EventSink | None) -> None:
        """Events are delivered in order on the reader thread; ``None`` drops them."""
        self._sink = sink

    def stderr_tail(self, n: int = 20) -> list[str]:
        """The agent's last stderr lines, with the requests it was sent merged in by time
        (as ``[name time] req ID OP ARGS`` lines, secrets masked)."""
        if n <= 0:
            return []
        with self._lock:
            lines, sent = list(self._stderr), list(self._sent)
        # (time, 0 = request first on a tie, order, line); the agent stamps in µs, and a
        # request is stamped before it is sent: the order is the causal one
        timed: list[tuple[float, int, int, str]] = []
        t = float("-inf")
        for i, line in enumerate(lines):
            t = _stamp(line, t)
            timed.append((t, 1, i, line))
        for i, (at, msg) in enumerate(sent):
            args = {k: v for k, v in msg.items() if k not in ("id", "op")}
            timed.append((at, 0, i, f"[{self.name} {at:.6f}] "
                          f"req {msg.get('id')} {msg.get('op')} {brief(args)}"))
        timed.sort()
        return [line for *_, line in timed[-n:]]

    def kill(self) -> None:
        """SIGKILL this agent (by its pid, through Popen: never a recycled pid)."""
        if self._running():
            try:
                self._proc.kill()
            except ProcessLookupError:
                pass

    def ask_to_close(self) -> None:
        """Send ``shutdown`` without waiting: a pool closing many agents asks them all
        first, so their ``libDestroy`` and exit run side by side, then ``close``s each."""
        with self._lock:
            if self._closed or self._closing or self._dead or not self._running():
                return
            self._closing = True
        try:
            self.send("shutdown")
        except AgentError:
            pass

    def close(self, timeout: float = 3.0) -> None:
        """Ask the agent to shut down, kill it if it does not, reap it, join threads."""
        with self._lock:
            if self._closed:
                return
            asked, self._closing = self._closing, True
            can_ask = not asked and not self._dead and self._running()
        if can_ask:
            try:
                self.request("shutdown", timeout=timeout)
            except (AgentError, TimeoutError):
                pass
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self._proc.wait()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        current = threading.current_thread()
        for t in (self._reader_thread, self._stderr_thread):
            if t is not current:
                t.join(timeout=5.0)
        self._sock.close()
        if self._proc.stderr is not None:
            try:
                self._proc.stderr.close()
            except OSError:
                pass
        if isinstance(self._proc, ForkedProcess):
            self._proc.close()
        with self._lock:
            self._closed = True
            self._dead = True
            self._cond.notify_all()
        self._fail_pending(self._crash_error(f"agent {self.name} closed"))

    def __enter__(self) -> "Agent":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _result(self, op: str, pending: _Pending) -> dict[str, Any]:
        if pending.error is not None:
            raise pending.error
        reply = pending.reply or {}
        if not reply.get("ok"):
            raise AgentError(str(reply.get("error") or f"{op} failed"))
        result = {k: v for k, v in reply.items() if k not in ("id", "ok")}
        if op == "start" and "sip_port" in result:
            self.sip_port = int(result["sip_port"])
        return result

    def _crash_error(self, message: str) -> AgentCrashed:
        if self._death is not None and not self._closing:
            return AgentCrashed(message, self._death.returncode, self._death.stderr_tail)
        return AgentCrashed(message, self._proc.returncode, self.stderr_tail())

    def _fail_pending(self, error: BaseException) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for p in pending.values():
            p.error = error
            p.done.set()

    def _deliver(self, event: dict[str, Any]) -> None:
        sink = self._sink
        if sink is None:
            return
        try:
            sink(event)
        except Exception as exc:  # a broken sink must not kill the reader
            self._stderr.append(f"[client] event sink raised {type(exc).__name__}: {exc}")

    def _reader_loop(self) -> None:
        reader = LineReader(self._sock)
        reason = "agent closed its channel"
        try:
            while True:
                msg = reader.read()
                if msg is None:
                    break
                if "id" in msg and "event" not in msg:
                    with self._lock:
                        pending = self._pending.pop(msg.get("id"), None)  # type: ignore[arg-type]
                    if pending is not None:
                        pending.reply = msg
                        pending.done.set()
                    continue
                if msg.get("event") == "ready":
                    with self._cond:
                        self._ready = True
                        self.agent_pid = msg.get("pid")
                        self._cond.notify_all()
                    continue
                self._deliver(msg)
        except (OSError, ProtocolError) as exc:
            reason = f"agent channel failed: {exc}"
        self._on_channel_end(reason)

    def _on_channel_end(self, reason: str) -> None:
        closing = self._closing
        # Reap the process (it normally exits right after closing the channel) and let
        # the stderr thread drain, so the report has the exit code and the C assert line.
        try:
            rc = self._proc.wait(timeout=0.5 if closing else 2.0)
        except subprocess.TimeoutExpired:
            rc = None
            if not closing:
                # Channel broken but the process lingers: it is useless, end it.
                self.kill()
                try:
                    rc = self._proc.wait(timeout=2.0)
                except subprocess.TimeoutExpired:
                    pass
        if not closing:
            self._stderr_thread.join(timeout=1.0)
        death = AgentCrashed(f"agent {self.name}: {reason}", rc, self.stderr_tail())
        with self._cond:
            self._dead = True
            if not closing:
                self._death = death
            self._cond.notify_all()
        self._fail_pending(death)
        if not closing:
            self._deliver({"event": "agent_died", "returncode": rc,
                           "stderr": self.stderr_tail(), "t": time.monotonic()})

    def _stderr_loop(self) -> None:
        stream = self._proc.stderr
        if stream is None:
            return
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                with self._lock:
                    self._stderr.append(line)
        except (OSError, ValueError):
            pass
