"""A load run: one graph as N iterations, up to C at once, started at R per second.

Each iteration is an ordinary :class:`~.runner.ScenarioRun` with agents from the shared
pool (reused across iterations, one set per running iteration). Progress is reported on
the calling thread, never on an iteration's thread.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from ..core.settings import EngineSettings
from ..format.graph import Graph
from .result import ScenarioResult
from .runner import AgentProvider, ScenarioRun

PROGRESS_EVERY_S = 1.0


@dataclass(frozen=True)
class Progress:
    """Where a load run stands: iterations ended, failed, and the rate they ended at."""

    done: int
    failed: int
    total: int
    elapsed_s: float

    @property
    def rate(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        return (f"sipflow: {self.done}/{self.total} iterations, {self.failed} failed, "
                f"{self.rate:.1f}/s")


class LoadRun:
    def __init__(self, graph: Graph, agents: AgentProvider, settings: EngineSettings,
                 repeat: int, rate: float = 0.0, concurrency: int = 1) -> None:
        self.graph, self.agents, self.settings = graph, agents, settings
        self.repeat, self.rate, self.concurrency = repeat, rate, max(1, concurrency)
        self.results: list[ScenarioResult | None] = [None] * repeat
        self._next = 0
        self._done = self._failed = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._t0 = 0.0

    def run(self, on_progress: Callable[[Progress], None] | None = None,
            every_s: float = PROGRESS_EVERY_S) -> list[ScenarioResult]:
        """Every iteration's result, in iteration order; re-raises an iteration's error."""
        self._t0 = time.monotonic()
        threads = [threading.Thread(target=self._worker, name=f"sipflow-load-{i}", daemon=True)
                   for i in range(min(self.concurrency, self.repeat))]
        for t in threads:
            t.start()
        try:
            shown = self._t0
            while any(t.is_alive() for t in threads):
                with self._changed:
                    self._changed.wait(0.1)
                now = time.monotonic()
                if on_progress is not None and now - shown >= every_s:
                    shown = now
                    on_progress(self.progress())
        except BaseException:  # Ctrl-C, pytest-timeout: no new iteration starts
            self._stop.set()
            raise
        finally:
            for t in threads:
                t.join()
        if on_progress is not None:
            on_progress(self.progress())
        if self._errors:
            raise self._errors[0]
        return [r for r in self.results if r is not None]

    def progress(self) -> Progress:
        with self._lock:
            return Progress(self._done, self._failed, self.repeat, time.monotonic() - self._t0)

    def _worker(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                index = self._next
                if index >= self.repeat:
                    return
                self._next += 1
            if self.rate > 0:  # open loop: iteration i starts at t0 + i/R, late ones at once
                delay = self._t0 + index / self.rate - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
            try:
                result = ScenarioRun(self.graph, self.agents, self.settings).run()
            except BaseException as exc:  # an engine error: stop the load, surface it
                with self._changed:
                    self._errors.append(exc)
                    self._changed.notify_all()
                self._stop.set()
                return
            with self._changed:
                self.results[index] = result
                self._done += 1
                self._failed += not result.passed
                self._changed.notify_all()


def run_load(graph: Graph, agents: AgentProvider, settings: EngineSettings, repeat: int,
             rate: float = 0.0, concurrency: int = 1,
             on_progress: Callable[[Progress], None] | None = None) -> list[ScenarioResult]:
    return LoadRun(graph, agents, settings, repeat, rate, concurrency).run(on_progress)
