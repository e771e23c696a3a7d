"""Fixtures of pytest-sipflow (registered by plugin.py): thin wrappers over ``factories``.

The factories (and through them the engine and pydantic) are imported when a fixture is
first used, so a pytest run that uses none pays nothing for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

from .glue.keys import session_key
from .glue.session import Settings

if TYPE_CHECKING:
    from .api.factories import ScenarioFactory, SipInstanceFactory


@pytest.fixture(scope="session")
def sipflow_settings(pytestconfig: pytest.Config) -> Settings:
    """The active sipflow settings: port plan, timeouts, full-trace switch."""
    return pytestconfig.stash[session_key].settings


@pytest.fixture
def sip_instance(pytestconfig: pytest.Config) -> "Iterator[SipInstanceFactory]":
    """Live SIP user agents for a Python test, each its own process on 127.0.0.1.

    ``sip_instance(name, dn="")`` returns a ready :class:`pytest_sipflow.api.ua.UserAgent`;
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

    Against your own server (real mode) an instance registers before it is returned; its
    settings default to the run's ``--sipflow-registrar``/``--sipflow-transport``/TLS
    options. ``sip_instance(name, dn, registrar="host:port", transport="udp|tcp|tls",
    username=, password=, realm=, domain=, outbound_proxy=, register=True,
    tls_cert=, tls_key=, sips=False)``; then
    ``ua.register(expected=None)``/``ua.unregister()``, a dn target is
    ``sip:<dn>@<domain>`` through the server, and clean-up un-REGISTERs. A refused
    registration raises ``SipActionError`` naming the instance and the code.
    """
    from .api.factories import SipInstanceFactory

    factory = SipInstanceFactory(pytestconfig.stash[session_key], skip=pytest.skip)
    yield factory
    factory.close()


@pytest.fixture
def scenario(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> "ScenarioFactory":
    """Run SIPFLOW graphs from Python: a ``*.sipflow.json`` path or a dict, with overrides.

    ``scenario.run(source, overrides={node id: {key: value}}, peers={name: ua})`` returns a
    :class:`pytest_sipflow.api.scenario.ScenarioOutcome` (``passed``, ``nodes`` with states
    and timings, ``events``, ``sip_messages``); ``result.assert_passed()`` fails like a
    collected file::

        @pytest.mark.parametrize("code", [486, 603])
        def test_rejects(scenario, code):
            result = scenario.run("busy.sipflow.json", overrides={"reject": {"statusCode": code}})
            result.assert_passed()
    """
    from .api.factories import ScenarioFactory

    return ScenarioFactory(pytestconfig.stash[session_key], Path(request.path).parent)
