"""A file's ``"slo"`` object: the objectives of a load run (``--sipflow-repeat``).

A model of the format (so collection refuses a bad one and the JSON Schema describes it);
``reporting.kpi`` measures the KPIs and checks them against it.
"""

from __future__ import annotations

import difflib
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import Problem, ScenarioFormatError
from .fields import KeyProblem


class Slo(BaseModel):
    """A file's ``"slo"``: minimums (``asr``, ``minMos``) and maximum latencies in ms."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    asr: float | None = Field(default=None, ge=0, le=1)
    min_mos: float | None = Field(default=None, alias="minMos", ge=1, le=5)
    p50_setup_ms: float | None = Field(default=None, alias="p50SetupMs", gt=0)
    p95_setup_ms: float | None = Field(default=None, alias="p95SetupMs", gt=0)
    p99_setup_ms: float | None = Field(default=None, alias="p99SetupMs", gt=0)
    p50_pdd_ms: float | None = Field(default=None, alias="p50PddMs", gt=0)
    p95_pdd_ms: float | None = Field(default=None, alias="p95PddMs", gt=0)
    p99_pdd_ms: float | None = Field(default=None, alias="p99PddMs", gt=0)
    p50_register_ms: float | None = Field(default=None, alias="p50RegisterMs", gt=0)
    p95_register_ms: float | None = Field(default=None, alias="p95RegisterMs", gt=0)
    p99_register_ms: float | None = Field(default=None, alias="p99RegisterMs", gt=0)


SLO_KEYS = [f.alias or name for name, f in Slo.model_fields.items()]


def _hint(key: str) -> str:
    close = difflib.get_close_matches(key, SLO_KEYS, n=1)
    return f"did you mean {close[0]!r}?" if close else f"known: {', '.join(SLO_KEYS)}"


def slo_keys(value: Any) -> Any:
    """The document's check before the model's: an unknown key named with a did-you-mean."""
    if isinstance(value, Mapping):
        for key in value:
            if key not in SLO_KEYS:
                raise KeyProblem(f"unknown SLO key; {_hint(str(key))}", f"slo.{key}")
    return value


def parse_slo(value: Any, path: str) -> Slo:
    """The ``slo`` object of a file, or a ScenarioFormatError naming each bad key."""
    if not isinstance(value, Mapping):
        raise ScenarioFormatError(path, [Problem(
            '"slo" is an object such as {"asr": 0.99, "p95SetupMs": 300}', field="slo")])
    try:
        return Slo.model_validate(dict(value))
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(p) for p in error["loc"])
            if error["type"] == "extra_forbidden":
                problems.append(Problem(f"unknown SLO key; {_hint(key)}", field=f"slo.{key}"))
            else:
                problems.append(Problem(error["msg"], field=f"slo.{key}"))
        raise ScenarioFormatError(path, problems) from None
