"""Real components for testing SIP flows: a Kamailio registrar/proxy the tests can start.

Nothing here imports pytest: the classes work in a fixture, a ``conftest.py`` hook, a
benchmark or a plain script alike.
"""

from __future__ import annotations

from pytest_sipflow.testing.kamailio import (
    KamailioError,
    KamailioServer,
    RequestLine,
    TlsFiles,
    available,
    generate_tls_files,
    kamailio_startup,
    fixed_accounts,
)

__all__ = [
    "KamailioError",
    "KamailioServer",
    "RequestLine",
    "TlsFiles",
    "available",
    "generate_tls_files",
    "kamailio_startup",
    "fixed_accounts",
]
