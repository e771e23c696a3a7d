"""Real components for testing SIP flows: a Kamailio registrar/proxy your tests can start.

No pytest here: the server works in a fixture, a hook, a benchmark or a script. The opt-in
``kamailio_server`` fixture is in ``pytest_sipflow.testing.fixtures``.
"""

from __future__ import annotations

from .kamailio import KamailioError, KamailioServer, available
from .records import Challenge, RequestLine
from .tls import TlsFiles, generate_tls_files

__all__ = ["Challenge", "KamailioError", "KamailioServer", "RequestLine", "TlsFiles", "available",
           "generate_tls_files"]
