"""``${NAME}`` / ``${NAME:-default}`` in node data, expanded at collection (spec §6).

Sans-io: the environment is a mapping passed in, so tests and the plugin decide where
values come from. Pure Python (no pydantic, no pytest): the plugin may import it cheaply.
Only the ``${...}`` form is special; a plain ``$`` (``$NAME``, ``$$``, a regex anchor) is
left as written. A default is literal text up to the first ``}`` and holds no reference.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..errors import Problem
from ..sip import SECRET_KEYS


#: The variable that is always defined: the pytest-xdist worker number ("0" without xdist).
WORKER_VARIABLE = "SIPFLOW_WORKER"

#: How deep data may nest: far deeper than any real file, far below Python's recursion limit.
MAX_DEPTH = 32

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def is_secret(field: str) -> bool:
    """True for a field path such as ``data.password`` whose value must stay hidden."""
    return field.rsplit(".", 1)[-1] in SECRET_KEYS


def expand_data(data: Mapping[str, Any], env: Mapping[str, str], node: str,
                ) -> tuple[dict[str, Any], list[Problem]]:
    """A copy of one node's ``data`` with every reference in its strings replaced.

    Strings are expanded at any depth (header values, ``expectHeaders`` checks, lists);
    keys are not. Every unset variable or malformed reference becomes a Problem naming
    the node and the field; the value of a secret field is never quoted.
    """
    problems: list[Problem] = []
    out = {key: _expand(value, env, node, f"data.{key}", problems, 1)
           for key, value in data.items()}
    return out, problems


def _expand(value: Any, env: Mapping[str, str], node: str, field: str,
            problems: list[Problem], depth: int) -> Any:
    if isinstance(value, str):
        return expand_text(value, env, node, field, problems)
    if depth > MAX_DEPTH and isinstance(value, (dict, list)):
        problems.append(Problem(f"nested more than {MAX_DEPTH} levels deep", node, field))
        return value
    if isinstance(value, dict):
        return {k: _expand(v, env, node, f"{field}.{k}", problems, depth + 1)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, node, f"{field}[{i}]", problems, depth + 1)
                for i, v in enumerate(value)]
    return value


def expand_text(text: str, env: Mapping[str, str], node: str | None, field: str,
                problems: list[Problem]) -> str:
    """``text`` with its ``${...}`` references replaced; problems are appended, not raised."""
    if "${" not in text:
        return text
    parts: list[str] = []
    pos = 0
    while (start := text.find("${", pos)) != -1:
        parts.append(text[pos:start])
        match = _REFERENCE.match(text, start)
        if match is None:
            shown = "" if is_secret(field) else f" {text[start:start + 40]!r}"
            problems.append(Problem(
                f"malformed environment reference{shown}; write ${{NAME}} or "
                "${NAME:-default} (NAME: letters, digits, _)", node, field))
            parts.append(text[start:start + 2])
            pos = start + 2
            continue
        name, default = match.group(1), match.group(2)
        if default is not None and "${" in default:
            problems.append(Problem(f"a default cannot contain a reference (in ${{{name}:-…}})",
                                    node, field))
            default = ""
        if env.get(name) or (name in env and default is None):
            parts.append(env[name])
        elif default is not None:  # as in the shell: unset or empty takes the default
            parts.append(default)
        else:
            problems.append(Problem(f"environment variable {name} is not set (write "
                                    f"${{{name}:-default}} to give a default)", node, field))
        pos = match.end()
    parts.append(text[pos:])
    return "".join(parts)

