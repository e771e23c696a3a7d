"""Runs the real-mode scenarios of this directory against the bundled test registrar.

When pytest first collects this directory it loads this file and calls its
``pytest_configure``: one Kamailio (pytest_sipflow.testing.KamailioServer) is started for
the run, on this pytest-xdist worker's own ports, with the suite's fixed accounts, and
the scenario files reach it through environment variables (``${SIPFLOW_TEST_UDP_PORT}``,
``${PBX_PW_1001}``, ...). ``pytest_sessionfinish`` stops it, ``pytest_unconfigure`` restores the environment.
Files: core-*/neg-01 are written by make_real_mode.py from the call-control ones
(tests/test_real_mode.py checks they are its current output); reg-01, reg-02, neg-02,
msg-01 and matrix-basic (6 items: transport x codec) are hand-written. reg-01 (a wrong
password) must fail at set-up, so it carries the ``xfail`` marker: the suite stays green,
and tests/test_real_mode.py runs it with
``--runxfail`` to check that it fails for the right reason (instance and 401 named).
Where Kamailio is not installed, the variables still hold placeholders (so the files
collect) and the items here are skipped with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_sipflow.glue.keys import session_key
from pytest_sipflow.testing import KamailioServer, available
from support.kamailio import fixed_accounts
from pytest_sipflow.testing.readiness import BASE_PORT, PORTS_PER_WORKER
from pytest_sipflow.format.worker import worker_index

HERE = Path(__file__).resolve().parent
_SERVER = pytest.StashKey[KamailioServer]()
_SAVED_ENV = pytest.StashKey[dict[str, str | None]]()
_SKIP = pytest.StashKey[str]()


def _is_xdist_controller(config: pytest.Config) -> bool:
    """The xdist controller runs no items: only its workers need a server."""
    return not hasattr(config, "workerinput") and getattr(config.option, "dist", "no") != "no"


def _placeholders() -> dict[str, str]:
    """Values that let the files collect (and be skipped) where Kamailio is missing."""
    port = BASE_PORT + PORTS_PER_WORKER * worker_index()
    missing = "/nonexistent/sipflow-kamailio-not-installed.pem"
    env = {"SIPFLOW_TEST_REGISTRAR_HOST": "127.0.0.1", "SIPFLOW_TEST_DOMAIN": "127.0.0.1",
           "SIPFLOW_TEST_REGISTRAR": f"127.0.0.1:{port}", "SIPFLOW_TEST_UDP_PORT": str(port),
           "SIPFLOW_TEST_TCP_PORT": str(port), "SIPFLOW_TEST_TLS_PORT": str(port + 1),
           "SIPFLOW_TEST_WRONG_PASSWORD": "not-the-password", "SIPFLOW_TEST_TLS_CA": missing,
           "SIPFLOW_TEST_TLS_WRONG_CA": missing, "SIPFLOW_TEST_TLS_CLIENT_CERT": missing,
           "SIPFLOW_TEST_TLS_CLIENT_KEY": missing}
    env.update({f"SIPFLOW_TEST_PORT_{t}": env[f"SIPFLOW_TEST_{t.upper()}_PORT"]
                for t in ("udp", "tcp", "tls")})
    env.update({f"PBX_PW_{user}": pw for user, pw in fixed_accounts().items()})
    return env


def pytest_configure(config: pytest.Config) -> None:
    if _is_xdist_controller(config) or _SAVED_ENV in config.stash:
        return
    reason = available()
    if reason is None:
        server = KamailioServer(fixed_accounts()).start()
        config.stash[_SERVER] = server
        env = server.environment()
        env["SIPFLOW_TEST_KAMAILIO_PID"] = str(server.pid)
    else:
        config.stash[_SKIP] = f"real mode needs the test registrar: {reason}"
        env = _placeholders()
    config.stash[_SAVED_ENV] = {name: os.environ.get(name) for name in env}
    os.environ.update(env)


def _stop(config: pytest.Config) -> None:
    server = config.stash.get(_SERVER, None)
    if server is not None:
        server.stop()
        del config.stash[_SERVER]


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Here, not only in pytest_unconfigure: an xdist worker may be torn down by its
    # controller as soon as it reports the end of its session.
    _stop(session.config)


def pytest_unconfigure(config: pytest.Config) -> None:
    _stop(config)
    for name, value in config.stash.get(_SAVED_ENV, {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    server = config.stash.get(_SERVER, None)
    if server is not None:
        # The CA exists only now; a user's suite would pass --sipflow-tls-ca instead.
        config.stash[session_key].use_tls_files(ca_file=str(server.tls.ca))
    reason = config.stash.get(_SKIP, None)
    if reason is None:
        return
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.skip(reason=reason))
