"""The file around the nodes: nodes and edges as the editor writes them, the top-level keys.

Lenient where the editor draws (positions, labels); node ``data`` is judged by the node
models in :mod:`.schema`.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from .fields import Millis, _Model, _text_number
from .slo import Slo, slo_keys

class RawNode(_Model):
    id: str = Field(min_length=1)
    type: str
    data: dict[str, Any] = Field(default_factory=dict, repr=False)  # may hold a password

    @field_validator("id", mode="before", json_schema_input_type=str | int)
    @classmethod
    def _id_text(cls, value: Any) -> Any:
        return _text_number(value)


class EdgeData(_Model):
    branch_type: str | None = None


class RawEdge(_Model):
    id: str | None = None
    source: str
    target: str
    source_handle: str | None = None
    data: EdgeData | None = None

    @property
    def is_failure(self) -> bool:
        return self.source_handle == "failure" or (
            self.data is not None and self.data.branch_type == "failure"
        )


class Document(_Model):
    name: str | None = None
    description: str | None = None
    markers: list[str] = Field(default_factory=list)
    timeout: Millis | None = None
    nodes: list[RawNode]
    edges: list[RawEdge] = Field(default_factory=list)
    # {"name": [values]}: one item per combination; checked by format.matrix
    parametrize: Any = None

    @field_validator("markers")
    @classmethod
    def _marker_names(cls, value: list[str]) -> list[str]:
        bad = [m for m in value if not m.isidentifier()]
        if bad:
            raise ValueError(f"marker name(s) {', '.join(map(repr, bad))} are not Python "
                             "identifiers (letters, digits and _, not starting with a digit)")
        return value

    # --- load runs (--sipflow-repeat): the objectives the run's KPIs must meet
    slo: Slo | None = None

    @field_validator("slo", mode="before")
    @classmethod
    def _slo_keys(cls, value: Any) -> Any:
        return slo_keys(value)
