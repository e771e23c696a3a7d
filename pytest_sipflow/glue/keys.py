"""Names several glue modules share: the session's stash key and the trace section's title.

A module of its own so that collection and outputs need not import each other.
"""

from __future__ import annotations

import pytest

from .session import SipflowSession

session_key = pytest.StashKey[SipflowSession]()

TRACE_SECTION = "sipflow SIP trace"  # add_report_section key
TRACE_TITLE = f"Captured {TRACE_SECTION} call"  # the title pytest gives that section
