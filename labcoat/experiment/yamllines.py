"""YAML that remembers the line of every key, so a validation error can point at it.

Used for experiment.yaml and for the front matter of Markdown role files.
"""

from __future__ import annotations

from typing import Any

import yaml

Loc = tuple[str | int, ...]
Lines = dict[Loc, int]
"""Field path (as pydantic reports it) -> 1-based line in the file."""


def parse_mapping(text: str, where: str, *, first_line: int = 1,
                  expect: str = "key: value") -> tuple[dict[str, Any] | None, Lines, list[str]]:
    """The mapping in `text`, the line of every key, and problems (syntax, duplicate keys).

    `where` names the file in messages; `first_line` is the file line `text` starts on.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        return None, {}, [yaml_error(err, where, first_line)]
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        return None, {}, [f"{where}:{first_line}: expected a mapping of fields ({expect}), "
                          f"found {kind}; fix: write one `key: value` per line"]
    lines: Lines = {}
    problems: list[str] = []
    if node is not None:
        _walk(node, (), lines, problems, (where, first_line - 1))
    return data, lines, problems


def yaml_error(err: yaml.YAMLError, where: str, first_line: int = 1) -> str:
    mark = getattr(err, "problem_mark", None)
    at = f"{where}:{mark.line + first_line}:{mark.column + 1}" if mark else where
    problem = getattr(err, "problem", None) or str(err)
    context = getattr(err, "context", None)
    what = f"{context}, {problem}" if context else problem
    return (f"{at}: YAML syntax error: {what}; fix: check the indentation and quoting on that "
            "line (quote values that contain `: ` or start with a special character)")


def _walk(node: yaml.Node, path: Loc, lines: Lines, problems: list[str],
          origin: tuple[str, int]) -> None:
    where, offset = origin
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*path, key_node.value)
            line = key_node.start_mark.line + 1 + offset
            if key in lines:
                problems.append(f"{where}:{line}: {dotted(key)}: duplicate key (first on line "
                                f"{lines[key]}); fix: keep only one")
                _forget(lines, key)  # YAML keeps the last one: so do the line numbers
            lines[key] = line
            _walk(value_node, key, lines, problems, origin)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1 + offset
            _walk(item, (*path, i), lines, problems, origin)


def _forget(lines: Lines, prefix: Loc) -> None:
    for loc in [loc for loc in lines if loc[:len(prefix)] == prefix]:
        del lines[loc]


def dotted(loc: Loc) -> str:
    """`("resources", "memory")` -> `resources.memory`; `("outputs", 0)` -> `outputs[0]`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def line_of(loc: Loc, lines: Lines) -> int | None:
    """The line of `loc`, or of its closest parent that is in the file (for missing keys)."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None
