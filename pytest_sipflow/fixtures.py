"""Fixtures of pytest-sipflow (registered by plugin.py): thin wrappers over ua.py and scenario.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import pytest

from .collect import session_key
from .core.targets import Directory
from .engine.result import ScenarioResult
from .options import Settings
from .scenario import Scenario, Source
from .session import SipflowSession
from .ua import DEFAULT_TIMEOUT, UserAgent


@pytest.fixture(scope="session")
def sipflow_settings(pytestconfig: pytest.Config) -> Settings:
    """The active sipflow settings: port plan, timeouts, full-trace switch."""
    return pytestconfig.stash[session_key].settings


class SipInstanceFactory:
    """Creates live user agents for one test and takes them all back at teardown."""

    def __init__(self, session: SipflowSession, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._session = session
        self.timeout = timeout
        self._agents: dict[str, UserAgent] = {}
        self._directory = Directory()  # every instance of the test can call the others by name

    def __call__(self, name: str, dn: str = "", *, label: str = "",
                 codecs: Sequence[str] = ("PCMU", "PCMA"), auto_ringing: bool = True,
                 timeout: float | None = None) -> UserAgent:
        if name in self._agents:
            raise ValueError(f"sip_instance {name!r} exists already in this test")
        (agent,) = self._session.pool.acquire(1)
        try:
            ua = UserAgent(agent, name, dn=dn, label=label, codecs=codecs,
                           auto_ringing=auto_ringing, timeout=timeout or self.timeout,
                           directory=self._directory)
        except BaseException:
            self._session.pool.release(agent, healthy=False)
            raise
        self._agents[name] = ua
        return ua

    @property
    def instances(self) -> list[UserAgent]:
        return list(self._agents.values())

    def close(self) -> None:
        for ua in self._agents.values():
            healthy = ua.close()
            self._session.pool.release(ua.agent, healthy)
        self._agents.clear()


@pytest.fixture
def sip_instance(pytestconfig: pytest.Config) -> Iterator[SipInstanceFactory]:
    """Live SIP user agents for a Python test, each its own process on 127.0.0.1.

    ``sip_instance(name, dn="")`` returns a ready :class:`pytest_sipflow.ua.UserAgent`;
    every wait has a timeout (5 s default) and fails with expected vs actual. All calls
    are released and the agents returned at teardown, even when the test fails::

        def test_call(sip_instance):
            alice, bob = sip_instance("alice", dn="100"), sip_instance("bob", dn="200")
            out = alice.call("200")            # a dn, an instance, or a sip: URI
            inc = bob.wait_incoming()
            inc.answer()
            out.wait_answered()
            out.release()
            inc.wait_disconnected()
    """
    factory = SipInstanceFactory(pytestconfig.stash[session_key])
    yield factory
    factory.close()


class ScenarioFactory:
    """Loads scenario graphs for one test; relative paths are relative to the test file."""

    def __init__(self, session: SipflowSession, base: Path) -> None:
        self._session = session
        self._base = base

    def load(self, source: Source, overrides: Mapping[str, Mapping[str, Any]] | None = None,
             **top: Any) -> Scenario:
        return Scenario.load(source, self._session.pool, overrides=overrides,
                             settings=self._session.settings.engine, base=self._base, **top)

    __call__ = load

    def run(self, source: Source, overrides: Mapping[str, Mapping[str, Any]] | None = None,
            peers: Mapping[str, UserAgent | str] | None = None, **top: Any) -> ScenarioResult:
        return self.load(source, overrides, **top).run(peers)


@pytest.fixture
def scenario(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> ScenarioFactory:
    """Run SIPFLOW graphs from Python: a ``*.sipflow.json`` path or a dict, with overrides.

    ``scenario.run(source, overrides={node id: {key: value}}, peers={name: ua})`` returns a
    :class:`pytest_sipflow.engine.result.ScenarioResult` (``passed``, ``nodes`` with states
    and timings, ``events``, ``sip_messages``); ``result.assert_passed()`` fails like a
    collected file::

        @pytest.mark.parametrize("code", [486, 603])
        def test_rejects(scenario, code):
            result = scenario.run("busy.sipflow.json", overrides={"reject": {"statusCode": code}})
            result.assert_passed()
    """
    return ScenarioFactory(pytestconfig.stash[session_key], Path(request.path).parent)
