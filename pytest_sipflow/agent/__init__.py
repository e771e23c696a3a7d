"""Agent processes: one pjsua2 user agent per child process, driven over JSON lines.

Only the client side is exported here, lazily: the child (``-m pytest_sipflow.agent``)
then does not pay for importing it. ``server`` (the sole importer of pjsua2) runs in the
child and must never be imported by the pytest process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Agent", "AgentCrashed", "AgentError"]

if TYPE_CHECKING:
    from .client import Agent, AgentCrashed, AgentError


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
