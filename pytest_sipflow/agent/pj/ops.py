"""The agent's tables: op name → implementation, pjsua2 callback name → handler.

Each room registers its ops with ``@op`` and its callbacks with ``@callback``; the
runtime dispatches requests through ``OPS`` and the thin pjsua2 subclasses fire
``CALLBACKS``. Adding an op is adding one decorated function in its room.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

#: An op: (agent state, request id, arguments) → result dict, None or ``DEFERRED``.
OpFn = Callable[[Any, Any, dict[str, Any]], Any]
#: A callback: (agent state, *what pjsua2 passed) → None.
CallbackFn = Callable[..., None]


class Deferred:
    """Returned by an op whose reply is sent later (dtmf, hold, transfer, …)."""


DEFERRED = Deferred()


@dataclass(frozen=True)
class Op:
    fn: OpFn
    needs_start: bool  # refused until ``start`` created the SIP transport


OPS: dict[str, Op] = {}
CALLBACKS: dict[str, CallbackFn] = {}


def op(name: str, needs_start: bool = True) -> Callable[[OpFn], OpFn]:
    def register(fn: OpFn) -> OpFn:
        OPS[name] = Op(fn, needs_start)
        return fn
    return register


def callback(name: str) -> Callable[[CallbackFn], CallbackFn]:
    """Handler of the pjsua2 callback ``name`` (e.g. ``onCallState``)."""
    def register(fn: CallbackFn) -> CallbackFn:
        CALLBACKS[name] = fn
        return fn
    return register
