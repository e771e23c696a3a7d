"""A file's top-level ``parametrize``: one item per combination of parameter values.

Pure Python. Parameters are substituted into node data *before* environment variables
(``${transport}`` first, then ``${NAME}``), so a parameter shadows a variable of the same
name and may build one's name: ``${SIPFLOW_TEST_PORT_${transport}}``.
"""

from __future__ import annotations

import itertools
import re
from typing import Any, Mapping

from ..errors import Problem
from .values import MAX_DEPTH, WORKER_VARIABLE

FIELD = "parametrize"


def check(raw: Any) -> tuple[dict[str, list[str]], list[Problem]]:
    """The parameters of a ``parametrize`` value, or the problems that refuse it."""
    if raw is None:
        return {}, []
    if not isinstance(raw, dict) or not raw:
        return {}, [Problem('parametrize is an object of parameter lists, e.g. '
                            '{"transport": ["udp", "tcp", "tls"]}', field=FIELD)]
    params: dict[str, list[str]] = {}
    problems: list[Problem] = []
    for name, values in raw.items():
        where = f"{FIELD}.{name}"
        if not name.isidentifier() or not name.isascii():
            problems.append(Problem(f"parameter name {name!r} is not an identifier (letters, "
                                    "digits and _, not starting with a digit)", field=where))
            continue
        if name == WORKER_VARIABLE:
            problems.append(Problem(f"{WORKER_VARIABLE} is set by the plugin and cannot be a "
                                    "parameter; choose another name", field=where))
            continue
        if not isinstance(values, list):
            problems.append(Problem(f"a parameter's values are a list, e.g. [\"udp\", \"tcp\"] "
                                    f"(got {type(values).__name__})", field=where))
            continue
        if not values:
            problems.append(Problem("the list of values is empty; give at least one (an empty "
                                    "list would make no test at all)", field=where))
            continue
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (str, int, float))]
        if bad:
            problems.append(Problem(f"values are strings or numbers (got {bad[0]!r})",
                                    field=where))
            continue
        text = [str(v) for v in values]
        twice = sorted({v for v in text if text.count(v) > 1})
        if twice:
            problems.append(Problem(f"value(s) {', '.join(map(repr, twice))} listed twice",
                                    field=where))
            continue
        params[name] = text
    return params, problems


def combinations(params: Mapping[str, list[str]]) -> list[tuple[str, dict[str, str]]]:
    """``(id, values)`` per combination, the first parameter varying slowest, ids joined
    with ``-`` in the order the file lists the parameters (as pytest's own ids)."""
    if not params:
        return [("", {})]
    names = list(params)
    return [("-".join(combo), dict(zip(names, combo)))
            for combo in itertools.product(*(params[n] for n in names))]


def _pattern(names: Any) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(r"\$\{(" + alternatives + r")(?::-[^}$]*)?\}")


def substitute(data: Any, values: Mapping[str, str], depth: int = 0) -> Any:
    """A copy of ``data`` with ``${name}`` of every parameter replaced in its strings."""
    if not values:
        return data
    return _sub(data, _pattern(values), values, depth)


def _sub(value: Any, pattern: re.Pattern[str], values: Mapping[str, str], depth: int) -> Any:
    if isinstance(value, str):
        return pattern.sub(lambda m: values[m.group(1)], value) if "${" in value else value
    if depth > MAX_DEPTH:
        return value  # values.expand_data reports the depth
    if isinstance(value, dict):
        return {k: _sub(v, pattern, values, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_sub(v, pattern, values, depth + 1) for v in value]
    return value


def unused(params: Mapping[str, list[str]], nodes: list[Any]) -> list[Problem]:
    """A parameter no node's data mentions would only repeat the same test: refused."""
    if not params:
        return []
    used: set[str] = set()
    pattern = _pattern(params)

    def walk(value: Any, depth: int) -> None:
        if isinstance(value, str):
            used.update(m.group(1) for m in pattern.finditer(value))
        elif isinstance(value, dict) and depth <= MAX_DEPTH:
            for v in value.values():
                walk(v, depth + 1)
        elif isinstance(value, list) and depth <= MAX_DEPTH:
            for v in value:
                walk(v, depth + 1)

    for node in nodes:
        walk(node, 0)
    return [Problem(f"parameter {name!r} is used in no node's data; write ${{{name}}} where "
                    "its value belongs (or remove it)", field=f"{FIELD}.{name}")
            for name in params if name not in used]
