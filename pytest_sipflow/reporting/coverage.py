"""Scenario coverage: which nodes of each file ran, which failure branches were taken.

Pure data: a file's shape (``FlowShape``, read from the raw JSON so the editor's positions
stay) plus the node states of every run of it. Runs of one file merge (parametrize, xdist:
workers send ``to_dict()``, the controller ``merge``s), and the suite renders as a table
like pytest-cov's; ``coverage_html`` draws the graphs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

STEP_TYPES = ("command", "event")
REACHED = ("running", "completed", "failed", "cancelled")  # pending/skipped: never reached
FAILURE_HANDLES = ("failure",)


@dataclass(frozen=True)
class FlowNode:
    id: str
    type: str  # "sipInstance" | "command" | "event"
    name: str  # command/event name, or the instance's label
    label: str = ""
    position: tuple[float, float] | None = None  # the editor's {x, y}


@dataclass(frozen=True)
class FlowEdge:
    source: str
    target: str
    failure: bool = False


@dataclass(frozen=True)
class FlowShape:
    """The drawable graph of one file: nodes and edges as written, nothing resolved."""

    path: str
    name: str
    nodes: tuple[FlowNode, ...]
    edges: tuple[FlowEdge, ...]

    @classmethod
    def from_document(cls, value: Mapping[str, Any], path: str) -> FlowShape:
        """From a decoded ``*.sipflow.json`` (also the editor's ``flowData`` wrapper).
        Meant for files the plugin already accepted: odd entries are skipped, not refused."""
        if isinstance(value.get("flowData"), str) and "nodes" not in value:
            value = {**json.loads(value["flowData"]), "name": value.get("name")}
        nodes = []
        for raw in value.get("nodes") or ():
            if not isinstance(raw, Mapping) or not isinstance(raw.get("id"), str):
                continue
            data = _mapping(raw.get("data"))
            pos = raw.get("position")
            xy = (float(pos["x"]), float(pos["y"])) if isinstance(pos, Mapping) and all(
                isinstance(pos.get(k), (int, float)) for k in "xy") else None
            kind = str(raw.get("type", ""))
            name = str(data.get("command") or data.get("event") or data.get("label") or raw["id"])
            nodes.append(FlowNode(raw["id"], kind, name, str(data.get("label") or ""), xy))
        edges = []
        for raw in value.get("edges") or ():
            if isinstance(raw, Mapping) and {"source", "target"} <= set(raw):
                data = _mapping(raw.get("data"))
                failure = (raw.get("sourceHandle") in FAILURE_HANDLES
                           or data.get("branchType") in FAILURE_HANDLES)
                edges.append(FlowEdge(str(raw["source"]), str(raw["target"]), failure))
        return cls(path, str(value.get("name") or path), tuple(nodes), tuple(edges))

    @classmethod
    def load(cls, path: str) -> FlowShape:
        with open(path, encoding="utf-8") as handle:
            return cls.from_document(json.load(handle), path)

    @property
    def steps(self) -> list[str]:
        """Command and event node ids, in file order: what coverage counts."""
        return [n.id for n in self.nodes if n.type in STEP_TYPES]

    @property
    def branch_nodes(self) -> list[str]:
        """Step ids with a failure edge, in file order."""
        sources = {e.source for e in self.edges if e.failure}
        return [i for i in self.steps if i in sources]

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "name": self.name,
                "nodes": [{"id": n.id, "type": n.type, "name": n.name, "label": n.label,
                           "position": list(n.position) if n.position else None}
                          for n in self.nodes],
                "edges": [{"source": e.source, "target": e.target, "failure": e.failure}
                          for e in self.edges]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FlowShape:
        nodes = tuple(FlowNode(n["id"], n["type"], n["name"], n.get("label", ""),
                               _xy(n.get("position")))
                      for n in data["nodes"])
        edges = tuple(FlowEdge(e["source"], e["target"], bool(e["failure"]))
                      for e in data["edges"])
        return cls(data["path"], data["name"], nodes, edges)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _xy(value: Any) -> tuple[float, float] | None:
    return (float(value[0]), float(value[1])) if value else None


@dataclass
class FileCoverage:
    """Every run of one file, merged: a node counts once it ran in any run."""

    shape: FlowShape
    runs: int = 0
    ran: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)  # failed in some run
    taken: set[str] = field(default_factory=set)  # branch nodes whose failure edge was taken

    def add_run(self, states: Mapping[str, str]) -> None:
        """One run's node states (``ScenarioResult.node_states()`` or ``states_of(doc)``).
        A failure branch is taken when its node failed: the engine then follows it."""
        self.runs += 1
        steps, branches = set(self.shape.steps), set(self.shape.branch_nodes)
        for node_id, state in states.items():
            if node_id not in steps or state not in REACHED:
                continue
            self.ran.add(node_id)
            if state == "failed":
                self.failed.add(node_id)
                if node_id in branches:
                    self.taken.add(node_id)

    def merge(self, other: FileCoverage) -> None:
        self.runs += other.runs
        self.ran |= other.ran
        self.failed |= other.failed
        self.taken |= other.taken

    @property
    def missed(self) -> list[str]:
        return [i for i in self.shape.steps if i not in self.ran]

    @property
    def not_taken(self) -> list[str]:
        """Branch nodes whose failure branch never ran, by node id."""
        return [i for i in self.shape.branch_nodes if i not in self.taken]

    @property
    def counts(self) -> tuple[int, int, int, int]:
        """(nodes, ran, branches, taken)."""
        return (len(self.shape.steps), len(self.ran), len(self.shape.branch_nodes),
                len(self.taken))

    @property
    def percent(self) -> float:
        return percent(*self.counts)

    def outcome(self, node_id: str) -> str:
        """``failed`` (a failure the flow did not branch on), ``untaken`` (ran, failure
        branch never taken), ``ok``, or ``never``."""
        if node_id not in self.ran:
            return "never"
        if node_id in self.failed and node_id not in self.shape.branch_nodes:
            return "failed"
        if node_id in self.shape.branch_nodes and node_id not in self.taken:
            return "untaken"
        return "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"shape": self.shape.to_dict(), "runs": self.runs, "ran": sorted(self.ran),
                "failed": sorted(self.failed), "taken": sorted(self.taken)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileCoverage:
        return cls(FlowShape.from_dict(data["shape"]), int(data["runs"]), set(data["ran"]),
                   set(data["failed"]), set(data["taken"]))


def percent(nodes: int, ran: int, branches: int, taken: int) -> float:
    """pytest-cov's rule: (ran + taken) / (nodes + branches); 100 for an empty file."""
    total = nodes + branches
    return 100.0 * (ran + taken) / total if total else 100.0


def states_of(document: Mapping[str, Any]) -> dict[str, str]:
    """Node states from a ``--sipflow-json`` result document."""
    return {i: str(n.get("state")) for i, n in (document.get("nodes") or {}).items()}


@dataclass
class Coverage:
    """The suite: one ``FileCoverage`` per file path."""

    files: dict[str, FileCoverage] = field(default_factory=dict)

    def add_run(self, shape: FlowShape, states: Mapping[str, str]) -> None:
        self.files.setdefault(shape.path, FileCoverage(shape)).add_run(states)

    def merge(self, other: Coverage | Mapping[str, Any]) -> None:
        """Add another process's coverage (a ``Coverage`` or its ``to_dict()``)."""
        if not isinstance(other, Coverage):
            other = Coverage.from_dict(other)
        for path, cov in other.files.items():
            if path in self.files:
                self.files[path].merge(cov)
            else:
                self.files[path] = FileCoverage.from_dict(cov.to_dict())

    @property
    def counts(self) -> tuple[int, int, int, int]:
        sums = [0, 0, 0, 0]
        for cov in self.files.values():
            sums = [a + b for a, b in zip(sums, cov.counts)]
        return sums[0], sums[1], sums[2], sums[3]

    @property
    def percent(self) -> float:
        return percent(*self.counts)

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "percent": round(self.percent, 2),
                "files": {p: c.to_dict() for p, c in sorted(self.files.items())}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Coverage:
        return cls({p: FileCoverage.from_dict(c) for p, c in data.get("files", {}).items()})

    def table(self, missing: bool = True) -> str:
        """The terminal summary, one row per file then TOTAL; with ``missing``, the node
        ids never run and failure branches never taken under each file that has some."""
        head = ("Name", "Nodes", "Ran", "Miss", "Branch", "Taken", "Cover")
        rows = [(p, *_row(c.counts), f"{c.percent:.0f}%") for p, c in sorted(self.files.items())]
        rows.append(("TOTAL", *_row(self.counts), f"{self.percent:.0f}%"))
        width = max(len(r[0]) for r in [head, *rows])
        fmt = "{:<%d}  {:>5}  {:>5}  {:>5}  {:>6}  {:>5}  {:>5}" % width
        line = "-" * len(fmt.format(*head))
        out = [fmt.format(*head), line]
        for row in rows[:-1]:
            out.append(fmt.format(*row))
            cov = self.files[row[0]]
            if missing and cov.missed:
                out.append(f"    never ran: {', '.join(cov.missed)}")
            if missing and cov.not_taken:
                out.append(f"    failure branch never taken: {', '.join(cov.not_taken)}")
        return "\n".join([*out, line, fmt.format(*rows[-1])])


def _row(counts: tuple[int, int, int, int]) -> tuple[int, int, int, int, int]:
    nodes, ran, branches, taken = counts
    return nodes, ran, nodes - ran, branches, taken


def fail_under(coverage: Coverage, threshold: float | None) -> str | None:
    """The failure message when the total is under ``--sipflow-coverage-fail-under``."""
    if threshold is None or coverage.percent + 1e-9 >= threshold:
        return None
    return (f"sipflow coverage {coverage.percent:.2f}% is under the required "
            f"{threshold:g}% (--sipflow-coverage-fail-under)")


def from_documents(documents: Iterable[Mapping[str, Any]],
                   shapes: Mapping[str, FlowShape]) -> Coverage:
    """Coverage from ``--sipflow-json`` documents; the file is the item id's part before
    ``::`` (documents of files without a shape are left out)."""
    cov = Coverage()
    for doc in documents:
        path = str(doc.get("item", "")).split("::", 1)[0]
        if path in shapes:
            cov.add_run(shapes[path], states_of(doc))
    return cov
