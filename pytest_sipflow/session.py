"""Per-pytest-process state: settings and the agent pool, closed when pytest ends.

No pytest here: the factories behind the fixtures use it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .engine.settings import EngineSettings
from .ports import PortPlan

if TYPE_CHECKING:
    from .pool import AgentPool


@dataclass(frozen=True)
class Settings:
    """What the ``sipflow`` options decided for this run."""

    ports: PortPlan
    engine: EngineSettings
    full_trace: bool


@dataclass
class SipflowSession:
    settings: Settings
    _pool: "AgentPool | None" = field(default=None, repr=False)
    refused_files: set[str] = field(default_factory=set)  # node ids of broken scenario files

    @property
    def pool(self) -> "AgentPool":
        if self._pool is None:  # created on first use: collection-only runs start nothing
            from .pool import AgentPool

            self._pool = AgentPool(self.settings.ports)
        return self._pool

    def use_tls_files(self, ca_file: str | None = None, cert_file: str | None = None,
                      key_file: str | None = None) -> None:
        """Point TLS at files made at run time (a conftest that starts its own test server
        generates its CA after the options were read)."""
        tls = replace(self.settings.engine.tls, **{k: v for k, v in
                      (("ca_file", ca_file), ("cert_file", cert_file), ("key_file", key_file))
                      if v is not None})
        self.settings = replace(self.settings, engine=replace(self.settings.engine, tls=tls))

    @property
    def has_pool(self) -> bool:
        return self._pool is not None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
