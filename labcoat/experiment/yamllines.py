"""YAML that remembers the line of every key, so a validation error can point at it.

Used for experiment.yaml and for the front matter of Markdown role files. Bounded, because a
spec may come from anywhere: files over `MAX_BYTES` are refused unread, and the parsed tree may
hold at most `MAX_VALUES` values with its aliases expanded (a 600-byte "billion laughs" file
expands to 10**9), nest at most `MAX_DEPTH` deep, and never contain itself (`&a [*a]`).
Each of those is one problem line, found before anything walks the expanded values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1 << 20
"""A spec or a role file is a few KB; past this it is refused unread."""
MAX_VALUES = 10_000
"""Values in the tree with aliases expanded: what validation would walk."""
MAX_DEPTH = 40
"""Levels of nesting (the spec itself needs four)."""

Loc = tuple[str | int, ...]
Lines = dict[Loc, int]
"""Field path (as pydantic reports it) -> 1-based line in the file."""


def parse_mapping(text: str, where: str, *, first_line: int = 1,
                  expect: str = "key: value") -> tuple[dict[str, Any] | None, Lines, list[str]]:
    """The mapping in `text`, the line of every key, and problems (syntax, duplicate keys, a
    tree too big, too deep or containing itself).

    `where` names the file in messages; `first_line` is the file line `text` starts on.
    """
    try:
        node, data = _load(text, where, first_line)
    except _Refused as err:
        return None, {}, [str(err)]
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


class _Refused(Exception):
    """The YAML is well formed but not something a spec may be (the message is the problem)."""


def _load(text: str, where: str, first_line: int) -> tuple[yaml.Node | None, object]:
    """Compose once, check the node graph's size, then construct from that same graph."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_tree(node, where, first_line - 1)
        return node, (loader.construct_document(node) if node is not None else None)
    except RecursionError:  # the composer recurses once per level of nesting
        raise _Refused(f"{where}:{first_line}: values nested too deeply (over {MAX_DEPTH} "
                       "levels); fix: flatten them") from None
    except (ValueError, OverflowError) as err:  # e.g. an integer of 5000 digits
        raise _Refused(f"{where}:{first_line}: a value cannot be read ({err}); fix: shorten "
                       "or quote it") from None
    finally:
        loader.dispose()


def _check_tree(root: yaml.Node, where: str, offset: int) -> None:
    """Walk the graph as validation would see it (aliases expanded), within the bounds."""
    seen, path = [0], set[int]()

    def visit(node: yaml.Node, depth: int) -> None:
        line = node.start_mark.line + 1 + offset
        if id(node) in path:
            raise _Refused(f"{where}:{line}: an alias (*name) refers to a value that contains "
                           "it, which never ends; fix: write the value out without the alias")
        seen[0] += 1
        if seen[0] > MAX_VALUES:
            raise _Refused(f"{where}:{line}: the aliases (*name) expand to more than "
                           f"{MAX_VALUES} values; fix: write the values out, or use fewer "
                           "aliases")
        if depth > MAX_DEPTH:
            raise _Refused(f"{where}:{line}: values nested more than {MAX_DEPTH} levels deep; "
                           "fix: flatten them")
        children = _children(node)
        path.add(id(node))
        for child in children:
            visit(child, depth + 1)
        path.discard(id(node))

    visit(root, 0)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return list(node.value) if isinstance(node, yaml.SequenceNode) else []


def read_source(path: Path) -> tuple[str | None, str | None]:
    """(text, None) for a readable UTF-8 file of at most `MAX_BYTES`, else (None, problem)."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as err:
        return None, f"{path}: cannot be read ({err.strerror or err}); fix: check that it is a " \
                     "readable file"
    if len(data) > MAX_BYTES:
        return None, f"{path}: larger than {MAX_BYTES >> 20} MB; fix: a spec or role file " \
                     "holds a few KB of settings, keep data in the workspace"
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        return None, (f"{path}:{line}:{column}: not UTF-8 text (byte 0x{data[err.start]:02x}); "
                      "fix: save the file as UTF-8")


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
