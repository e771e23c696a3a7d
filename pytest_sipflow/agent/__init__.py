"""Agent processes: one pjsua2 user agent per child process, driven over JSON lines.

Only the client side is exported, lazily: the child (``-m pytest_sipflow.agent``) then does
not pay for it, and the pytest process never imports the pjsua2 side (``agent/pj``).
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
