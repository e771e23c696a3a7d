"""Fixtures of pytest-sipflow (registered by plugin.py)."""

from __future__ import annotations

import pytest

from .collect import session_key
from .options import Settings


@pytest.fixture(scope="session")
def sipflow_settings(pytestconfig: pytest.Config) -> Settings:
    """The active sipflow settings: port plan, timeouts, full-trace switch."""
    return pytestconfig.stash[session_key].settings
