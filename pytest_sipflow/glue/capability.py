"""The capability report and skips: items needing what the wheel lacks never start.

The probe starts when the first scenario file is collected (or when a test uses the
``sip_instance``/``scenario`` fixtures), runs beside collection, and is waited for only
if an item needs a capability or the report line is printed.
"""

from __future__ import annotations

import pytest

from .collect import SipflowItem
from .keys import session_key

FIXTURES = ("sip_instance", "scenario")
CACHE_KEY = "sipflow/capabilities"


def reports_here(config: pytest.Config) -> bool:
    """Whether this process prints the capability line. An xdist worker does not (its
    terminal is the controller's): it probes only when an item needs a capability,
    instead of paying a throwaway pjsua2 process while every worker collects."""
    return not hasattr(config, "workerinput")


def start(config: pytest.Config) -> None:
    """Start the probe once, or take the verdict an earlier run kept for this wheel."""
    from ..agent import capabilities as caps  # not at import: a run without agents pays nothing

    session = config.stash[session_key]
    if session.probed:
        return
    cache, key = getattr(config, "cache", None), caps.wheel_key()
    known = caps.remembered(key)
    if known is None and cache is not None and key:
        kept = cache.get(CACHE_KEY, None)
        if isinstance(kept, dict) and kept.get("wheel") == key:
            known = caps.from_json(kept.get("capabilities"))
    session.start_probe(known)


def keep(config: pytest.Config) -> None:
    """Keep a verdict for later runs (one with unknowns is not kept): in this process
    and in pytest's cache (``--cache-clear`` probes again)."""
    from ..agent import capabilities as caps

    session = config.stash[session_key]
    cache, key = getattr(config, "cache", None), caps.wheel_key()
    if not key or not session.probed:
        return
    found = session.capabilities()
    caps.remember(key, found)
    if cache is not None and caps.remembered(key) is found:
        cache.set(CACHE_KEY, {"wheel": key, "capabilities": caps.to_json(found)})


def uses_agents(item: pytest.Item) -> bool:
    return isinstance(item, SipflowItem) or bool(
        set(getattr(item, "fixturenames", ())) & set(FIXTURES))


def skip_missing(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every item that needs a capability this installation lacks as skipped."""
    if not any(uses_agents(item) for item in items):
        return
    from ..agent.capabilities import skip_reason
    from ..core.needs import run_needs, scenario_needs

    session = config.stash[session_key]
    engine = session.settings.engine
    for item in items:
        if isinstance(item, SipflowItem):
            needs = scenario_needs(item.graph.instances.values(), engine)
        elif uses_agents(item):
            needs = run_needs(engine)
        else:
            continue
        if reports_here(config):
            start(config)  # for the report line, even when nothing is needed
        reason = skip_reason(session.capabilities(), sorted(needs)) if needs else None
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def report_line(config: pytest.Config) -> str | None:
    session = config.stash[session_key]
    if not session.probed:
        return None
    keep(config)
    return f"sipflow: capabilities: {session.capabilities().describe()}"


def is_skipped(item: pytest.Item) -> bool:
    return item.get_closest_marker("skip") is not None
