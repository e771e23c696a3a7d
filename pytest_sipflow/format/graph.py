"""Scenario graph: typed nodes, per-instance chains, and every refusal of spec §5.

Built once at collection time from a parsed :class:`~.schema.Document`; the engine only
walks it. Anything wrong is collected into one :class:`ScenarioFormatError` so a user
sees all problems of a file at once.
"""

from __future__ import annotations

import os
import re
import warnings
from collections import ChainMap
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from ..errors import Problem, ScenarioFormatError, SipflowWarning
from . import matrix, parse, schema
from .values import WORKER_VARIABLE, expand_data
from .worker import worker_index

@dataclass(frozen=True)
class LoadOptions:
    """What loading a file depends on besides the file (sans-io: passed in, never read).

    ``env`` feeds ``${NAME}`` references; ``worker`` is ``${SIPFLOW_WORKER}`` (None: taken
    from ``env["PYTEST_XDIST_WORKER"]``, so 0 without xdist); ``registrar_configured`` says
    the run gives every instance a registrar (then no instance is in local mode).
    """

    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    worker: int | None = None
    registrar_configured: bool = False
    params: Mapping[str, str] | None = None  # one combination of the file's ``parametrize``

    def variables(self) -> Mapping[str, str]:
        worker = self.worker if self.worker is not None else \
            worker_index(self.env.get("PYTEST_XDIST_WORKER", ""))
        return ChainMap({WORKER_VARIABLE: str(worker)}, self.env)  # type: ignore[arg-type]


@dataclass
class Instance:
    id: str
    data: schema.SipInstanceData
    starts: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.data.label or self.id


@dataclass
class Step:
    """A command or event node, with its resolved instance and branches."""

    id: str
    kind: str  # "command" | "event"
    data: schema.CommandData | schema.EventData
    instance: str = ""  # the instance the node acts on
    chain: str = ""  # the instance whose thread runs it
    success: str | None = None
    failure: str | None = None

    @property
    def name(self) -> str:
        return self.data.canonical

    @property
    def call_id(self) -> str:
        return self.data.call_id


@dataclass
class Graph:
    path: Path
    name: str
    description: str
    markers: list[str]
    timeout: float | None
    instances: dict[str, Instance]
    steps: dict[str, Step]
    unreachable: list[str]
    slo: schema.Slo | None = None  # a load run's objectives (``--sipflow-repeat``)
    params: dict[str, str] = field(default_factory=dict)  # this combination's values

    @property
    def param_id(self) -> str:
        """``tls-PCMA``: the values in the file's order, as pytest writes parametrize ids."""
        return "-".join(self.params.values())


def load(path: Path | str, options: LoadOptions | None = None) -> Graph:
    """The graph of one ``*.sipflow.json`` file; every problem as a ScenarioFormatError."""
    path = Path(path)
    return build(parse.read_document(path), path, options)


def load_all(path: Path | str, options: LoadOptions | None = None) -> list[Graph]:
    """One graph per combination of the file's ``parametrize`` (one graph without it).

    Each combination is validated on its own (a ``pbxTransport`` must be valid once
    substituted); the problems of all of them are raised together.
    """
    path = Path(path)
    doc = parse.read_document(path)
    declared, problems = matrix.check(doc.parametrize)
    if problems:
        raise ScenarioFormatError(str(path), problems)
    options = options or LoadOptions()
    combos = matrix.combinations(declared)
    graphs: list[Graph] = []
    seen: dict[Problem, list[str]] = {}
    for combo_id, values in combos:
        try:
            graphs.append(build(doc, path, replace(options, params=values)))
        except ScenarioFormatError as exc:
            for problem in exc.problems:
                seen.setdefault(problem, []).append(combo_id)
    if seen:
        raise ScenarioFormatError(str(path), [
            p if len(ids) == len(combos) or not declared else
            Problem(f"{p.message} (with {', '.join(f'[{i}]' for i in ids)})", p.node, p.field)
            for p, ids in seen.items()])
    return graphs


def from_value(value: Any, path: Path | str = "<dict>",
               options: LoadOptions | None = None) -> Graph:
    """A graph from an already-decoded JSON value (dict or editor wrapper)."""
    value = parse.unwrap(value, str(path))
    return build(parse.parse_document(value, str(path)), Path(path), options)


def build(doc: schema.Document, path: Path, options: LoadOptions | None = None) -> Graph:
    options = options or LoadOptions()
    variables = options.variables()
    declared, problems = matrix.check(doc.parametrize)
    params = dict(options.params or {})
    problems += matrix.unused(declared, [n.data for n in doc.nodes])
    problems += [Problem(f"parameter {name!r} has no value; pass one of {', '.join(vals)} "
                         "(params= in Python)", field=f"{matrix.FIELD}.{name}")
                 for name, vals in declared.items() if name not in params]
    instances: dict[str, Instance] = {}
    steps: dict[str, Step] = {}
    seen: set[str] = set()
    broken_instances: set[str] = set()  # refused already: no follow-up "unknown instance"

    for node in doc.nodes:
        if node.id in seen:
            problems.append(Problem("duplicate node id", node.id, "id"))
            continue
        seen.add(node.id)
        expanded, errs = expand_data(matrix.substitute(node.data, params), variables, node.id)
        errs = _name_parameters(errs, declared)
        if errs:  # values would be half-expanded: only check which keys are written
            model, more = parse.node_model(node)
            more += parse.unknown_keys(model, node.data, node.id) if model else []
            data = None
        else:
            data, more = parse.parse_node_data(node, expanded)
        problems += errs + more
        if data is None:
            if node.type == "sipInstance":
                broken_instances.add(node.id)
            continue
        if isinstance(data, schema.SipInstanceData):
            instances[node.id] = Instance(node.id, data)
        else:
            steps[node.id] = Step(node.id, node.type, data)  # type: ignore[arg-type]

    if not instances and not any(n.type == "sipInstance" for n in doc.nodes):
        problems.append(Problem("the scenario has no sipInstance node; add at least one",
                                field="nodes"))
    problems += _shared_local_dns(instances, options.registrar_configured)

    # Edges: existence, branch names, start nodes, branches.
    for i, edge in enumerate(doc.edges):
        label = edge.id or f"edges[{i}]"
        branch_errors = _branch_problems(edge, label)
        problems += branch_errors
        bad = bool(branch_errors)
        for end in ("source", "target"):
            ident = getattr(edge, end)
            if ident not in seen:
                problems.append(Problem(f"edge {label!r} names missing node {ident!r}",
                                        ident, end))
                bad = True
        if bad or edge.source not in instances and edge.source not in steps:
            continue
        if edge.target not in steps:
            if edge.target in instances:
                problems.append(Problem(
                    f"edge {label!r} points at a sipInstance; edges lead to command or "
                    "event nodes", edge.target, "target"))
            continue
        if edge.source in instances:
            instances[edge.source].starts.append(edge.target)
            continue
        src = steps[edge.source]
        slot = "failure" if edge.is_failure else "success"
        if getattr(src, slot) is not None:
            problems.append(Problem(
                f"two {slot} edges leave this node ({getattr(src, slot)!r} and "
                f"{edge.target!r}); keep one", src.id, "sourceHandle"))
            continue
        setattr(src, slot, edge.target)

    # Instance references.
    for step in steps.values():
        inst_id = step.data.sip_instance_id
        if inst_id is not None and inst_id not in instances and inst_id not in broken_instances:
            problems.append(Problem(
                f"unknown sipInstanceId {inst_id!r}; instances: {', '.join(instances) or 'none'}",
                step.id, "data.sipInstanceId"))
        if isinstance(step.data, schema.Incoming) and step.data.number is not None:
            owner = next((i.id for i in instances.values() if i.data.dn == step.data.number), None)
            if owner is None:
                problems.append(Problem(
                    f"INCOMING number {step.data.number!r} matches no sipInstance dn",
                    step.id, "data.number"))
            elif inst_id is None:
                step.instance = owner
        if inst_id is not None:
            step.instance = inst_id

    problems += _check_cycles(steps)
    unreachable: list[str] = []
    if not problems:
        problems += _assign_chains(instances, steps)
        unreachable = [s.id for s in steps.values() if not s.chain]
    if problems:
        raise ScenarioFormatError(str(path), problems)
    for node_id in unreachable:  # attributed to the scenario file, not to this module
        warnings.warn_explicit(
            f"node {node_id!r} is reachable from no sipInstance and will be skipped",
            SipflowWarning, filename=str(path), lineno=1)

    return Graph(path=path, name=doc.name or _stem(path), description=doc.description or "",
                 markers=list(doc.markers), timeout=doc.timeout, instances=instances,
                 steps=steps, unreachable=unreachable, params=params, slo=doc.slo)


def _name_parameters(problems: list[Problem], declared: Mapping[str, Any]) -> list[Problem]:
    """An unset variable in a parametrized file may be a misspelt parameter: say so."""
    if not declared:
        return problems
    out = []
    for p in problems:
        unset = re.match(r"environment variable (\w+) is not set", p.message)
        if unset:
            close = parse.did_you_mean(unset.group(1), declared)
            p = Problem(f"{unset.group(1)} is neither a parameter ({', '.join(declared)}) nor "
                        f"a set environment variable{close}", p.node, p.field)
        out.append(p)
    return out


def _shared_local_dns(instances: dict[str, Instance], registrar: bool) -> list[Problem]:
    """Two local-mode instances with one dn make a DN target ambiguous (spec §5)."""
    if registrar:
        return []
    owners: dict[str, str] = {}
    problems = []
    for inst in instances.values():
        if inst.data.pbx_host or not inst.data.dn:
            continue
        first = owners.setdefault(inst.data.dn, inst.id)
        if first != inst.id:
            problems.append(Problem(
                f"dn {inst.data.dn!r} is also the dn of {first!r}; in local mode a DN target "
                "would be ambiguous (give each instance its own dn, or a registrar)",
                inst.id, "data.dn"))
    return problems


def _branch_problems(edge: schema.RawEdge, label: str) -> list[Problem]:
    """A ``sourceHandle``/``branchType`` that names no branch is refused, not guessed."""
    problems = []
    for field_name, value in (("sourceHandle", edge.source_handle),
                              ("data.branchType", edge.data and edge.data.branch_type)):
        if value in (None, "", *schema.BRANCHES):
            continue
        if field_name == "sourceHandle" and value in schema.NEUTRAL_HANDLES:
            continue
        close = parse.did_you_mean(str(value), schema.BRANCHES)
        problems.append(Problem(
            f"edge {label!r}: {field_name.split('.')[-1]} {value!r} names no branch; "
            f"use 'success', 'failure' or leave it out{close}", edge.source, field_name))
    handle, branch = edge.source_handle, edge.data and edge.data.branch_type
    if handle in schema.BRANCHES and branch in schema.BRANCHES and handle != branch:
        problems.append(Problem(f"edge {label!r}: sourceHandle {handle!r} contradicts "
                                f"branchType {branch!r}; keep one", edge.source, "sourceHandle"))
    return problems


def _stem(path: Path) -> str:
    name = path.name
    return name[: -len(".sipflow.json")] if name.endswith(".sipflow.json") else path.stem


def _check_cycles(steps: dict[str, Step]) -> list[Problem]:
    WHITE, GREY, BLACK = 0, 1, 2
    color = dict.fromkeys(steps, WHITE)
    for root in steps:
        if color[root] != WHITE:
            continue
        stack: list[tuple[str, list[str]]] = [(root, _next(steps[root]))]
        color[root] = GREY
        path = [root]
        while stack:
            node, todo = stack[-1]
            if not todo:
                color[node] = BLACK
                stack.pop()
                path.pop()
                continue
            nxt = todo.pop()
            if nxt not in steps:
                continue
            if color[nxt] == GREY:
                loop = path[path.index(nxt):] + [nxt]
                return [Problem(f"cycle {' -> '.join(loop)}; scenarios are acyclic",
                                node, "edges")]
            if color[nxt] == WHITE:
                color[nxt] = GREY
                path.append(nxt)
                stack.append((nxt, _next(steps[nxt])))
    return []


def _next(step: Step) -> list[str]:
    return [n for n in (step.success, step.failure) if n is not None]


def _assign_chains(instances: dict[str, Instance], steps: dict[str, Step]) -> list[Problem]:
    problems = []
    for inst in instances.values():
        todo = list(inst.starts)
        while todo:
            step = steps[todo.pop()]
            if step.chain == inst.id:
                continue
            if step.chain:
                problems.append(Problem(
                    f"reached from the chains of both {step.chain!r} and {inst.id!r}; a node "
                    "runs on one instance's thread", step.id, "edges"))
                continue
            step.chain = inst.id
            if not step.instance:
                step.instance = inst.id
            todo += _next(step)
    return problems
