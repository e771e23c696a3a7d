"""The agent's side of the channel: reader thread, request queue, ordered outbox, wake-up.

No pjsua2 here: the pjsua2 side owns the main thread and blocks in ``libHandleEvents``;
this module hands it requests and sends its replies and events in order (see ``Channel``).
"""

from __future__ import annotations

import os
import queue
import socket
import sys
import threading
import time
from typing import Any, Callable

from ..sip import SECRET_KEYS
from ..sip.message import readable
from .protocol import LineReader, LineWriter, ProtocolError

#: How long after the parent vanished the process may spend before a hard exit.
ORPHAN_GRACE_S = 2.0
_NAME = ["agent"]


def set_name(name: str) -> None:
    _NAME[0] = name


def log(msg: str) -> None:
    """Diagnostics go to stderr: the parent keeps the tail for crash reports."""
    try:
        sys.stderr.write(f"[{_NAME[0]} {time.monotonic():.6f}] {readable(msg)}\n")
        sys.stderr.flush()
    except Exception:
        pass


def hard_exit(code: int) -> None:
    """Leave without running Python finalizers: after (or instead of) ``libDestroy`` a
    SWIG destructor touching pjsua would abort the process."""
    try:
        sys.stderr.flush()
    except Exception:
        pass
    os._exit(code)


def mask_secrets(value: Any) -> Any:
    """A copy of request arguments with every secret replaced by ``"***"`` (stderr reaches
    reports)."""
    if isinstance(value, dict):
        return {k: ("***" if isinstance(k, str) and k.lower() in SECRET_KEYS and v
                    else mask_secrets(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


def brief(args: dict[str, Any]) -> str:
    """One log line of request arguments: secrets masked, at most 200 characters."""
    text = " ".join(f"{k}={v!r}" for k, v in mask_secrets(args).items())
    return text if len(text) <= 200 else text[:197] + "..."


def clean(value: Any) -> Any:
    """``value`` with every string made UTF-8-encodable (surrogate escapes decoded)."""
    if isinstance(value, str):
        return readable(value)
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


class Channel:
    """Requests in, replies and events out, and the main thread's wake-up.

    No pjsua2 here. The pjsua2 side owns the main thread and blocks in
    ``libHandleEvents``; this module gives it requests and takes its replies/events:

    * the reader thread (``sipflow-agent-reader``) only turns socket lines into queued
      requests and wakes the main thread;
    * ``post()`` hands facts over from other threads (pjmedia's EOF) and wakes it too;
    * replies and events go out through one ordered outbox, flushed by the main thread, so
      what happened during a request precedes its reply;
    * every string leaving the agent is made encodable first (SWIG hands peer text with
      surrogate escapes, which JSON cannot encode).

    Waking: the main thread blocks in pjsip's ioqueue, so a wake-up must be I/O there. The
    pjsua2 side registers ``wake_address``: a UDP transport of its own on loopback that
    only receives these 1-byte datagrams (pjsip drops packets ≤ 32 bytes without a log
    line). It does not depend on the SIP transports (TCP/TLS-only agents wake the same way).
    """

    def __init__(self, sock: socket.socket, on_orphaned: Callable[[], None]) -> None:
        self.sock = sock
        self.out = LineWriter(sock)
        self.requests: "queue.SimpleQueue[dict[str, Any] | None]" = queue.SimpleQueue()
        self.posted: "queue.SimpleQueue[tuple[str, Any]]" = queue.SimpleQueue()
        self.outbox: list[dict[str, Any]] = []
        self.on_orphaned = on_orphaned
        #: set by the pjsua2 side before the reader starts: where wake-up datagrams go
        self.wake_address: tuple[str, int] | None = None
        self._waker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._reader: threading.Thread | None = None

    # -- out ------------------------------------------------------------------------

    def emit(self, event: str, **fields: Any) -> None:
        msg: dict[str, Any] = {"event": event, "t": round(time.monotonic(), 6)}
        msg.update(fields)
        self.outbox.append(msg)

    def reply(self, req_id: Any, ok: bool, result: dict[str, Any] | None = None,
              error: str | None = None) -> None:
        msg: dict[str, Any] = {"id": req_id, "ok": ok}
        if ok:
            if result:
                msg.update({k: v for k, v in result.items() if k not in ("id", "ok")})
        else:
            msg["error"] = error or "failed"
        self.outbox.append(msg)

    def flush(self, call_of: Callable[[str], str | None]) -> None:
        """Send the outbox in order. ``call_of`` maps a Call-ID to a handle for events
        logged before their call's Call-ID was known (an INVITE inside makeCall)."""
        if not self.outbox:
            return
        box, self.outbox = self.outbox, []
        for msg in box:
            cid = msg.pop("_callid", None)
            if cid is not None and msg.get("call") is None:
                msg["call"] = call_of(cid)
            try:
                self.out.send(msg if msg.pop("_clean", False) else clean(msg))
            except OSError:
                self.on_orphaned()  # parent gone: nothing to report to any more

    # -- in -------------------------------------------------------------------------

    def next_request(self) -> dict[str, Any] | None:
        """A queued request, or None when there is none. Channel closed → on_orphaned."""
        try:
            req = self.requests.get_nowait()
        except queue.Empty:
            return None
        if req is None:
            self.on_orphaned()
            return None
        return req

    def post(self, kind: str, data: Any) -> None:
        """From any thread: hand a fact to the main loop and wake it."""
        self.posted.put((kind, data))
        self.wake()

    def take_posted(self) -> list[tuple[str, Any]]:
        items: list[tuple[str, Any]] = []
        while True:
            try:
                items.append(self.posted.get_nowait())
            except queue.Empty:
                return items

    def wake(self) -> None:
        """End the main thread's ``libHandleEvents`` wait now (see ``Channel``)."""
        addr = self.wake_address
        if addr is not None:
            try:
                self._waker.sendto(b"\0", addr)
            except OSError:
                pass

    def start_reader(self) -> None:
        self._reader = threading.Thread(target=self._read, name="sipflow-agent-reader",
                                        daemon=True)
        self._reader.start()

    def _read(self) -> None:
        """Reader thread: socket lines → request queue. Never touches pjsua2."""
        reader = LineReader(self.sock)
        try:
            while True:
                msg = reader.read()
                if msg is None:
                    break
                self.requests.put(msg)
                self.wake()
        except (OSError, ProtocolError) as exc:
            log(f"channel read failed: {exc}")
        self.requests.put(None)
        self.wake()
        # If the main thread is stuck inside pjsua, still do not outlive the parent.
        time.sleep(ORPHAN_GRACE_S)
        log("main loop did not exit after channel close: hard exit")
        hard_exit(3)
