"""What several glue modules share: the session's stash key, the trace section's title,
whether pytest-html writes a report.

A module of its own so that collection and outputs need not import each other.
"""

from __future__ import annotations

import pytest

from .session import SipflowSession

session_key = pytest.StashKey[SipflowSession]()

TRACE_SECTION = "sipflow SIP trace"  # add_report_section key
TRACE_TITLE = f"Captured {TRACE_SECTION} call"  # the title pytest gives that section


def html_wanted(config: pytest.Config) -> bool:
    """pytest-html is loaded and writes a report in this run."""
    return bool(getattr(config.option, "htmlpath", None)) and config.pluginmanager.hasplugin("html")
