"""The suite's fixed Kamailio accounts and the benchmark's start-up timing."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pytest_sipflow.testing import KamailioServer


def fixed_accounts(workers: int = 10, per_worker: int = 9) -> dict[str, str]:
    """The suite's fixed test accounts: ``10<w><n>`` for worker w, slot n (1001 … 1099).

    Account ``10<w><n>`` has the password of ``100<n>`` so a scenario can write
    ``"dn": "10${SIPFLOW_WORKER}1", "password": "${PBX_PW_1001}"`` (no nested variables).
    A password comes from the environment (``PBX_PW_100<n>``) when set there.
    """
    accounts = {}
    for worker in range(workers):
        for slot in range(1, per_worker + 1):
            base = f"100{slot}"
            accounts[f"10{worker}{slot}"] = os.environ.get(f"PBX_PW_{base}", f"pw-{base}-sipflow")
    return accounts


def kamailio_startup(users: Mapping[str, str] | None = None, **kwargs: Any
                     ) -> tuple[float, float]:
    """(start-to-listening, stop) seconds of one throwaway server, for benchmarks."""
    server = KamailioServer(users or {"1001": "pw-1001-sipflow"}, **kwargs)
    with server:
        pass
    assert server.started_in is not None and server.stopped_in is not None
    return server.started_in, server.stopped_in
