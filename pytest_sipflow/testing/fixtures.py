"""Opt-in fixtures: ``pytest_plugins = ["pytest_sipflow.testing.fixtures"]`` in a conftest.py.

``kamailio_server`` is one real Kamailio for the session (this xdist worker's ports) with the
accounts of ``kamailio_accounts``; override that fixture to choose your own.
"""

from __future__ import annotations

import secrets
from typing import Iterator

import pytest

from .kamailio import KamailioServer, available


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
    server = KamailioServer(kamailio_accounts, workdir=tmp_path_factory.mktemp("kamailio"))
    with server:
        session = _sipflow_session(pytestconfig)
        if session is not None and server.tls is not None:
            session.use_tls_files(ca_file=str(server.tls.ca))
        yield server


def _sipflow_session(config: pytest.Config) -> object | None:
    from ..glue.keys import session_key

    return config.stash.get(session_key, None)
