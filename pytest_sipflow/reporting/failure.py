"""Plain-text failure reports that read like an assertion diff.

Only strings leave this module, so a report survives the trip from an xdist worker to
the controller unchanged.
"""

from __future__ import annotations

from typing import Any

from ..engine.result import Failure, ScenarioResult
from ..format.graph import Graph

MARKS = {
    "completed": "ok",
    "failed": "FAILED",
    "cancelled": "cancelled",
    "skipped": "not reached",
    "pending": "not reached",
    "running": "running",
}


def render_failure(result: ScenarioResult, graph: Graph | None = None,
                   ladder: str | None = None) -> str:
    """What failed, each instance's path, then (when given) the SIP ladder."""
    failure = result.failure or Failure("the scenario was stopped before it ended")
    lines = [f"scenario {result.name!r} {result.state}"]
    if failure.node is not None:
        what = f"{failure.name}" if failure.name else "node"
        lines.append(f"failing node: {failure.node!r} (instance {failure.instance!r}, {what})")
    lines.append(f"reason: {failure.reason}")
    if failure.expected is not None or failure.actual is not None:
        lines.append(f"  expected: {failure.expected if failure.expected is not None else '-'}")
        lines.append(f"  actual:   {failure.actual if failure.actual is not None else '-'}")
    lines += [f"  {line}" for line in failure.detail]
    lines += recording_lines(result, skip=failure.detail)
    lines.append("")
    lines.append("paths:")
    lines += render_paths(result, graph)
    if getattr(result, "media", None):
        lines += ["", "media (last statistics of each call; rx = received by the instance):",
                  media_table(result.media)]
    if ladder is not None:
        lines += ["", "SIP ladder:", ladder]
    return "\n".join(lines)


def media_table(media: dict[str, dict[str, Any]]) -> str:
    from ..media.stats import MediaStats, format_table

    return format_table({f"{inst} {key}": None if s is None else MediaStats.from_dict(s)
                         for inst, calls in media.items() for key, s in calls.items()})
def recording_lines(result: ScenarioResult, skip: tuple[str, ...] = ()) -> list[str]:
    """``recording: PATH (instance, callId)`` for every WAV of what an instance received."""
    lines = []
    for rec in getattr(result, "recordings", ()):
        line = f"recording: {rec.get('path')}"
        if f"  {line}" not in skip and line not in skip:
            lines.append(f"{line} ({rec.get('instance')} heard callId {rec.get('callId')!r})")
    return lines


def render_paths(result: ScenarioResult, graph: Graph | None = None) -> list[str]:
    """Each instance's chain: what ran and how it ended, then what was never reached."""
    if graph is not None:
        chains = list(graph.instances)
    else:
        chains = list(dict.fromkeys([*result.paths, *(n.chain for n in result.nodes.values()
                                                        if n.chain)]))
    width = max((len(c) for c in chains), default=0)
    lines = []
    for chain in chains:
        visited = result.paths.get(chain, [])
        parts = [_node(result, node_id) for node_id in visited]
        rest = [n for n in result.nodes.values() if n.chain == chain and n.id not in visited]
        parts += [_node(result, n.id) for n in rest]
        lines.append(f"  {chain.ljust(width)}: {' -> '.join(parts) if parts else '(no nodes)'}")
    orphans = [n for n in result.nodes.values() if not n.chain]
    if orphans:
        lines.append(f"  {'(unreachable)'}: {', '.join(_node(result, n.id) for n in orphans)}")
    return lines


def _node(result: ScenarioResult, node_id: str) -> str:
    node = result.nodes[node_id]
    mark = MARKS.get(node.state, node.state)
    timing = f" {node.duration * 1000:.0f} ms" if node.duration is not None else ""
    return f"{node.id} [{node.name} {mark}{timing}]"
