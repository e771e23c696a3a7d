"""Scenario graphs from Python: load, override node data, run, inspect the result.

The engine behind the ``scenario`` fixture; no pytest in here.
"""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any, Mapping

from ..engine.result import ScenarioResult
from ..engine.runner import AgentProvider, EngineSettings, ScenarioRun
from ..errors import Problem, ScenarioFailed, ScenarioFormatError
from ..format import graph as graph_mod
from ..format import parse
from ..reporting.failure import render_failure
from .ua import UserAgent

Source = str | Path | Mapping[str, Any]


class ScenarioOutcome(ScenarioResult):
    """A result of the Python API: the engine's record plus ``assert_passed``."""

    def assert_passed(self) -> None:
        """Raise the same assertion-diff failure a collected scenario file shows."""
        __tracebackhide__ = True
        if not self.passed:
            raise ScenarioFailed(self, render_failure(self))


def load_value(source: Source, base: Path | None = None) -> tuple[Any, Path]:
    """The scenario's JSON value (wrapper unwrapped) and the path it is known by."""
    if isinstance(source, Mapping):
        value = copy.deepcopy(dict(source))
        path = Path(str(value.get("name") or "scenario") + ".sipflow.json")
        if base is not None:
            path = base / path
        return parse.unwrap(value, str(path)), path
    path = Path(source)
    if not path.is_absolute() and base is not None:
        path = base / path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioFormatError(str(path), [Problem(f"cannot read the file: {exc.strerror}")]
                                  ) from None
    return parse.parse_text(text, str(path)), path


def apply_overrides(value: dict[str, Any], overrides: Mapping[str, Mapping[str, Any]],
                    path: Path) -> None:
    """Merge ``{node id: {dataKey: value}}`` into the nodes' data (camelCase keys, as in files)."""
    nodes = {n.get("id"): n for n in value.get("nodes", []) if isinstance(n, dict)}
    for node_id, data in overrides.items():
        if node_id not in nodes:
            raise ScenarioFormatError(str(path), [Problem(
                f"override names a node that does not exist; nodes: {', '.join(map(str, nodes))}",
                node_id)])
        nodes[node_id].setdefault("data", {}).update(dict(data))


class Scenario:
    """A validated scenario graph, ready to run any number of times."""

    def __init__(self, graph: graph_mod.Graph, agents: AgentProvider,
                 settings: EngineSettings | None = None) -> None:
        self.graph = graph
        self._agents = agents
        self._settings = settings or EngineSettings()

    @classmethod
    def load(cls, source: Source, agents: AgentProvider, *,
             overrides: Mapping[str, Mapping[str, Any]] | None = None,
             settings: EngineSettings | None = None, base: Path | None = None,
             params: Mapping[str, Any] | None = None, **top: Any) -> "Scenario":
        """``params`` are substituted as ``${name}`` before environment variables (the
        values of one combination of a file's ``parametrize``, or any of your own)."""
        value, path = load_value(source, base)
        if not isinstance(value, dict):
            parse.parse_document(value, str(path))  # raises the format error
        apply_overrides(value, overrides or {}, path)
        value.update(top)  # e.g. name=..., timeout=...
        options = graph_mod.LoadOptions(params={k: str(v) for k, v in (params or {}).items()})
        return cls(graph_mod.build(parse.parse_document(value, str(path)), path, options),
                   agents, settings)

    @property
    def name(self) -> str:
        return self.graph.name

    def run(self, peers: Mapping[str, "UserAgent | str"] | None = None) -> ScenarioOutcome:
        """Run to the end; ``peers`` lets MakeCall/BlindTransfer target Python-driven UAs by name."""
        return ScenarioRun(self.graph, self._agents, self._settings,
                           peers=_peer_uris(peers), result_type=ScenarioOutcome).run()

    def start(self, peers: Mapping[str, "UserAgent | str"] | None = None) -> "RunningScenario":
        """Run in the background while the test drives other user agents."""
        return RunningScenario(ScenarioRun(self.graph, self._agents, self._settings,
                                           peers=_peer_uris(peers), result_type=ScenarioOutcome))


class RunningScenario:
    def __init__(self, run: ScenarioRun) -> None:
        self._run = run
        self._result: ScenarioResult | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"sipflow-scenario-{run.graph.name}",
                                        daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            self._result = self._run.run()
        except BaseException as exc:  # re-raised in the test thread by wait()
            self._error = exc

    def wait(self, timeout: float | None = None) -> ScenarioResult:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"scenario {self._run.graph.name!r} still running after {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


def _peer_uris(peers: Mapping[str, "UserAgent | str"] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, peer in (peers or {}).items():
        uri = peer.uri if isinstance(peer, UserAgent) else str(peer)
        out[name] = uri
        if isinstance(peer, UserAgent):
            out.setdefault(peer.dn, uri)
    return out
