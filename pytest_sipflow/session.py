"""Per-pytest-process state: settings and the agent pool, closed when pytest ends."""

from __future__ import annotations

from dataclasses import dataclass, field

from .options import Settings
from .pool import AgentPool


@dataclass
class SipflowSession:
    settings: Settings
    _pool: AgentPool | None = field(default=None, repr=False)
    refused_files: set[str] = field(default_factory=set)  # node ids of broken scenario files

    @property
    def pool(self) -> AgentPool:
        if self._pool is None:  # created on first use: collection-only runs start nothing
            self._pool = AgentPool(self.settings.ports)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
