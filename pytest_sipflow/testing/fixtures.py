"""Opt-in fixtures: ``pytest_plugins = ["pytest_sipflow.testing.fixtures"]`` in a conftest.py.

``kamailio_server`` is one real Kamailio for the session (this xdist worker's ports) with the
accounts of ``kamailio_accounts``; override that fixture to choose your own.
``rtpengine_relay`` is one rtpengine; ``kamailio_media_server`` a second Kamailio (same accounts)
whose calls' media all go through that relay.
"""

from __future__ import annotations

import secrets
import shutil
from typing import Iterator

import pytest

from .kamailio import KamailioServer, available
from .process import claim_media_block, free_port_block
from .rtpengine import RtpEngine


@pytest.fixture(scope="session")
def kamailio_accounts() -> dict[str, str]:
    """User -> password of the server's accounts (random passwords, fresh per run)."""
    return {user: f"pw-{secrets.token_hex(6)}" for user in ("1001", "1002", "1003", "1004")}


@pytest.fixture(scope="session")
def kamailio_server(kamailio_accounts: dict[str, str], pytestconfig: pytest.Config,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[KamailioServer]:
    """A started Kamailio (registrar + proxy, UDP/TCP/TLS), stopped at the end of the session.

    Skips where Kamailio cannot run here (the reason says what to install). Its generated CA
    is handed to pytest-sipflow, so TLS instances of this run trust it.
    """
    reason = available()
    if reason:
        pytest.skip(reason)
    yield from _serve(KamailioServer(kamailio_accounts,
                                     workdir=tmp_path_factory.mktemp("kamailio")), pytestconfig)


@pytest.fixture(scope="session")
def rtpengine_relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtpEngine]:
    """A started rtpengine (userspace, 127.0.0.1, 100 media ports of this xdist worker's
    block), stopped by its pid at the end of the session. Skips where it is not installed."""
    if shutil.which("rtpengine") is None:
        pytest.skip("rtpengine is not installed (Debian package rtpengine-daemon)")
    ng_port = free_port_block(1, 13500, 100)
    first, claim = claim_media_block(100, 48000, 400)  # held while the relay runs
    with claim, RtpEngine(ng_port, first, first + 99,
                          workdir=tmp_path_factory.mktemp("rtpengine")) as relay:
        yield relay


@pytest.fixture(scope="session")
def kamailio_media_server(kamailio_accounts: dict[str, str], rtpengine_relay: RtpEngine,
                          pytestconfig: pytest.Config,
                          tmp_path_factory: pytest.TempPathFactory) -> Iterator[KamailioServer]:
    """Like ``kamailio_server`` (its own ports), but every call's media is anchored in
    ``rtpengine_relay`` and an INVITE's ``X-Sipflow-Fault`` header breaks it on purpose."""
    reason = available()
    if reason:
        pytest.skip(reason)
    yield from _serve(KamailioServer(kamailio_accounts, rtpengine=rtpengine_relay, tls=False,
                                     workdir=tmp_path_factory.mktemp("kamailio-media")),
                      pytestconfig)


def _serve(server: KamailioServer, config: pytest.Config) -> Iterator[KamailioServer]:
    with server:
        session = _sipflow_session(config)
        if session is not None and server.tls is not None:
            session.use_tls_files(ca_file=str(server.tls.ca))
        yield server


def _sipflow_session(config: pytest.Config) -> object | None:
    from ..glue.keys import session_key

    return config.stash.get(session_key, None)
