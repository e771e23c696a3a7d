"""Which pytest-xdist worker this process is: ``${SIPFLOW_WORKER}`` and every port block.

Its own tiny module so the plugin, the format and the test server share it at no cost.
"""

from __future__ import annotations

import os
import re


def worker_index(worker_id: str | None = None) -> int:
    """0 for a plain run; N for xdist worker ``gwN``."""
    worker_id = worker_id if worker_id is not None else os.environ.get("PYTEST_XDIST_WORKER", "")
    match = re.fullmatch(r"gw(\d+)", worker_id or "")
    return int(match.group(1)) if match else 0
