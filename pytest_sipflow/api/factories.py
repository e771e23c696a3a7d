"""The objects behind the ``sip_instance`` and ``scenario`` fixtures; no pytest in here."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence

from ..core.account import Account, account_from
from ..core.settings import EngineSettings
from ..core.targets import Directory
from ..engine.result import ScenarioResult
from ..errors import SipflowWarning
from ..format.media_keys import SRTP_KEYINGS, SRTP_USES
from ..sip import DEFAULT_CODECS
from .scenario import Scenario, Source
from .ua import DEFAULT_TIMEOUT, SipActionError, UserAgent

if TYPE_CHECKING:
    from ..agent.pool import AgentPool


class Session(Protocol):
    """What the factories need of the run's session (the pytest glue hands its own in)."""

    @property
    def pool(self) -> "AgentPool": ...

    @property
    def engine(self) -> EngineSettings: ...


class SipInstanceFactory:
    """Creates live user agents for one test and takes them all back at teardown."""

    def __init__(self, session: Session, timeout: float = DEFAULT_TIMEOUT,
                 skip: Callable[[str], Any] | None = None) -> None:
        self._session = session
        self._skip = skip  # pytest.skip: a feature this pjsua2 build lacks skips the test
        self.timeout = timeout
        self._agents: dict[str, UserAgent] = {}
        self._directory = Directory()  # every instance of the test can call the others by name

    def __call__(self, name: str, dn: str = "", *, label: str = "",
                 codecs: Sequence[str] = DEFAULT_CODECS, auto_ringing: bool = True,
                 timeout: float | None = None, registrar: str | None = None,
                 transport: str | None = None, username: str | None = None,
                 password: str | None = None, realm: str | None = None,
                 domain: str | None = None, outbound_proxy: str | None = None,
                 register: bool = True, expires: int = 300, media: bool = False,
                 srtp: str = "disabled", srtp_keying: str = "sdes",
                 tls_cert: str | Path | None = None, tls_key: str | Path | None = None,
                 sips: bool = False) -> UserAgent:
        """A ready agent; with a registrar (given here or ``--sipflow-registrar``) it is
        registered before this returns, unless ``register=False``. ``media``: watch each
        call's RTP (final statistics at its end); ``srtp``: disabled, optional, mandatory.
        ``tls_cert``/``tls_key``: its own client certificate (mutual TLS); ``sips``: sips:
        registrar, AOR and Contact (TLS only)."""
        __tracebackhide__ = True
        if name in self._agents:
            raise ValueError(f"sip_instance {name!r} exists already in this test")
        if srtp not in SRTP_USES or srtp_keying not in SRTP_KEYINGS:
            raise SipActionError(f"{name}: srtp must be one of {', '.join(SRTP_USES)} and "
                                 f"srtp_keying one of {', '.join(SRTP_KEYINGS)} (got "
                                 f"{srtp!r}, {srtp_keying!r})")
        if srtp != "disabled" and srtp_keying == "dtls":
            from ..agent.capabilities import skip_reason

            problem = skip_reason(self._session.capabilities(), ["dtls-srtp"])
            if problem:
                if self._skip is None:
                    raise SipActionError(f"{name}: {problem}")
                self._skip(problem)
        engine = self._session.engine
        try:
            account = account_from(dn or name, engine, registrar=registrar, transport=transport,
                                   username=username, password=password, realm=realm,
                                   domain=domain, outbound_proxy=outbound_proxy,
                                   register=register, expires=expires)
        except ValueError as exc:
            raise SipActionError(f"{name}: {exc}") from None
        account = _with_tls(name, account, tls_cert, tls_key, sips)
        (agent,) = self._session.pool.acquire(1)
        try:
            ua = UserAgent(agent, name, dn=dn, label=label, codecs=codecs,
                           auto_ringing=auto_ringing, timeout=timeout or self.timeout,
                           directory=self._directory, account=account, settings=engine,
                           media=media, srtp=srtp, srtp_keying=srtp_keying)
        except BaseException:
            self._session.pool.release(agent, healthy=False)
            raise
        self._agents[name] = ua
        return ua

    @property
    def instances(self) -> list[UserAgent]:
        return list(self._agents.values())

    def close(self) -> None:
        """Every agent back to the pool (un-REGISTERed), then the warnings: a failed
        un-REGISTER is worth a warning only, and under ``-W error`` it must not strand agents."""
        late = []
        for ua in self._agents.values():
            healthy = ua.close()
            # An instance's own client certificate stays with the agent's TLS connections:
            # such an agent is never lent to another instance.
            own_cert = ua.account is not None and ua.account.tls_cert
            self._session.pool.release(ua.agent, healthy and not own_cert)
            if ua.cleanup_warning:
                late.append(ua.cleanup_warning)
        self._agents.clear()
        for message in late:
            warnings.warn(message, SipflowWarning, stacklevel=2)


def _with_tls(name: str, account: Account | None, cert: str | Path | None,
              key: str | Path | None, sips: bool) -> Account | None:
    """The account with the instance's own client certificate and sips: URIs, refused
    the way the format refuses ``tlsCert``/``tlsKey``/``sips``."""
    if bool(cert) != bool(key):
        missing = "tls_key" if cert else "tls_cert"
        raise SipActionError(f"{name}: a client certificate needs both tls_cert and tls_key: "
                             f"{missing} is missing")
    if sips and (account is None or account.transport != "TLS"):
        actual = "local mode (no registrar)" if account is None else repr(account.transport)
        raise SipActionError(f"{name}: sips=True needs transport='tls' (sips: URIs are "
                             f"reached over TLS only), not {actual}")
    if account is None:
        if cert:
            raise SipActionError(f"{name}: tls_cert/tls_key need a server (registrar= or "
                                 "--sipflow-registrar) over transport='tls'")
        return None
    if not (cert or sips):
        return account
    return replace(account, tls_cert=str(cert) if cert else None,
                   tls_key=str(key) if key else None, sips=sips)


class ScenarioFactory:
    """Loads scenario graphs for one test; relative paths are relative to the test file."""

    def __init__(self, session: Session, base: Path) -> None:
        self._session = session
        self._base = base

    def load(self, source: Source, overrides: Mapping[str, Mapping[str, Any]] | None = None,
             params: Mapping[str, Any] | None = None, **top: Any) -> Scenario:
        return Scenario.load(source, self._session.pool, overrides=overrides,
                             settings=self._session.engine, base=self._base, params=params,
                             **top)

    __call__ = load

    def run(self, source: Source, overrides: Mapping[str, Mapping[str, Any]] | None = None,
            peers: Mapping[str, UserAgent | str] | None = None,
            params: Mapping[str, Any] | None = None, **top: Any) -> ScenarioResult:
        return self.load(source, overrides, params=params, **top).run(peers)
