"""How a call step fails: the reasons the engine turns into a failed node and ``ua.py``
into an ``AssertionError``; a module of their own so every core module may raise them.
"""

from __future__ import annotations

from typing import Sequence


class AgentDied(Exception):
    """The agent process ended; ``stderr`` holds its last lines for the report."""

    def __init__(self, returncode: int | None, stderr: list[str]) -> None:
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"agent process died (exit code {returncode})")


class StepFailed(Exception):
    """A call step did not do what it should; ``timed_out`` when nothing came in time."""

    def __init__(self, reason: str, expected: str | None = None, actual: str | None = None,
                 detail: Sequence[str] = (), timed_out: bool = False) -> None:
        self.reason, self.expected, self.actual = reason, expected, actual
        self.detail = tuple(detail)
        self.timed_out = timed_out
        super().__init__(reason)

    def render(self) -> str:
        """Reason with the expected/actual lines, as an assertion message."""
        lines = [self.reason]
        if self.expected is not None or self.actual is not None:
            lines.append(f"  expected: {self.expected if self.expected is not None else '-'}")
            lines.append(f"  actual:   {self.actual if self.actual is not None else '-'}")
        lines += [f"  {line}" for line in self.detail]
        return "\n".join(lines)
