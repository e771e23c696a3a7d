"""Per-pytest-process state: settings and the agent pool, closed when pytest ends.

No pytest here: the factories behind the fixtures use it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from ..agent.ports import PortPlan
from ..core.settings import EngineSettings

if TYPE_CHECKING:
    from ..agent.capabilities import Capabilities, Probe
    from ..agent.pool import AgentPool


@dataclass(frozen=True)
class ReportSettings:
    """What the reports show and write besides the failure text (``--sipflow-trace`` etc.)."""

    trace: str = "failed"  # SIP trace section of "failed" items, of "all", or "none"
    ladder_lines: int = 40  # messages in the failure report's ladder (the last ones)
    pcap_dir: str | None = None  # absolute; one .pcap per item
    json_dir: str | None = None  # absolute; one .json per item
    coverage_dir: str | None = None  # absolute; coverage.json and coverage.html (controller)
    coverage_fail_under: float | None = None  # percent
    hep: str | None = None  # host:port of a HEP capture node
    hep_capture_id: int = 1

    def wants_trace(self, passed: bool) -> bool:
        return self.trace == "all" or (self.trace == "failed" and not passed)

    @property
    def writes_files(self) -> bool:
        return bool(self.pcap_dir or self.json_dir)


@dataclass(frozen=True)
class LoadSettings:
    """``--sipflow-repeat/-rate/-concurrency``: a scenario file as a load of iterations."""

    repeat: int = 0  # 0: every file runs once, as a test
    rate: float = 0.0  # iterations started per second; 0: as fast as they end
    concurrency: int = 1

    @property
    def active(self) -> bool:
        return self.repeat > 0


@dataclass(frozen=True)
class Settings:
    """What the ``sipflow`` options decided for this run."""

    ports: PortPlan
    engine: EngineSettings
    full_trace: bool
    report: ReportSettings = field(default_factory=ReportSettings)
    load: LoadSettings = field(default_factory=LoadSettings)


@dataclass
class SipflowSession:
    settings: Settings
    _pool: "AgentPool | None" = field(default=None, repr=False)
    refused_files: set[str] = field(default_factory=set)  # node ids of broken scenario files
    _probe: "Probe | None" = field(default=None, repr=False)
    _capabilities: "Capabilities | None" = field(default=None, repr=False)
    capture_warned: bool = False  # the "RTP not captured" warning was given

    @property
    def pool(self) -> "AgentPool":
        if self._pool is None:  # created on first use: collection-only runs start nothing
            from ..agent.pool import AgentPool

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
    def engine(self) -> EngineSettings:
        return self.settings.engine

    @property
    def has_pool(self) -> bool:
        return self._pool is not None

    def start_probe(self, known: "Capabilities | None" = None) -> None:
        """Start the capability probe (a throwaway process) once; it runs while pytest
        collects. ``known``: a verdict kept from an earlier run of the same wheel."""
        if self._probe is None and self._capabilities is None:
            if known is not None:
                self._capabilities = known
                return
            from ..agent.capabilities import Probe

            self._probe = Probe()

    @property
    def probed(self) -> bool:
        return self._probe is not None or self._capabilities is not None

    def capabilities(self) -> "Capabilities":
        """What the wheel can do (probed once per pytest process, waited for here)."""
        self.start_probe()
        if self._capabilities is None:
            assert self._probe is not None
            self._capabilities = self._probe.result()
        return self._capabilities

    def close(self) -> None:
        if self._probe is not None:
            self._probe.close()
        if self._pool is not None:
            self._pool.close()
