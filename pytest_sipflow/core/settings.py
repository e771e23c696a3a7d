"""Engine settings: plain records, importable without the engine (the option layer uses them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..sip import LOOPBACK


@dataclass(frozen=True)
class TlsSettings:
    """How TLS instances check the server and prove themselves (``--sipflow-tls-*``)."""

    ca_file: str | None = None  # added to the trusted CAs
    cert_file: str | None = None  # client certificate (mutual TLS)
    key_file: str | None = None
    verify: bool = True  # False only with --sipflow-tls-insecure


@dataclass(frozen=True)
class EngineSettings:
    event_timeout_ms: float = 10_000  # nodes without their own ``timeout``
    scenario_timeout_ms: float = 60_000  # files without their own ``timeout``
    request_timeout_s: float = 5.0  # an agent must answer a request within this
    registrar: str | None = None  # "host[:port]" for instances without their own pbxHost
    transport: str = "UDP"  # for instances that set no pbxTransport of their own
    tls: TlsSettings = field(default_factory=TlsSettings)
    bind_address: str = LOOPBACK  # local address of SIP and RTP
    register_timeout_s: float = 5.0  # a registration (or un-registration) must end within this
    record_dir: str | None = None  # recordings without a filePath (None: a fresh temp folder)
    #: the agents keep the SIP trace; it is fetched only for header checks and failed runs
    #: (nothing live needs it: no report, HEP, load KPIs or action-log hook in this run)
    keep_trace: bool = False
