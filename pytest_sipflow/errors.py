"""The plugin's own exception and warning types.

Everything a user can cause (a broken file, a failed call flow, a dead agent) is raised
as one of these, so the pytest layer can render it as plain text without a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class SipflowError(Exception):
    """Base of every error pytest-sipflow raises on purpose."""


class SipflowWarning(UserWarning):
    """A scenario that runs but is probably not what its author meant."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a scenario file, located as precisely as we can."""

    message: str
    node: str | None = None
    field: str | None = None

    def render(self) -> str:
        where = []
        if self.node is not None:
            where.append(f"node {self.node!r}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class ScenarioFormatError(SipflowError):
    """The file breaks the format contract; raised at collection, before any socket opens."""

    def __init__(self, path: str, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.path}: invalid sipflow scenario"
        if len(self.problems) == 1:
            return f"{head}: {self.problems[0].render()}"
        lines = [f"{head} ({len(self.problems)} problems):"]
        lines += [f"  - {p.render()}" for p in self.problems]
        return "\n".join(lines)


class ScenarioFailed(SipflowError, AssertionError):
    """A scenario ran and did not pass; carries the result so reports can show paths."""

    def __init__(self, result: object, text: str) -> None:
        self.result = result
        self.text = text
        super().__init__(text)

    def __str__(self) -> str:
        return self.text


class AgentUnavailable(SipflowError):
    """No SIP agent process could be started or bound to a port."""
