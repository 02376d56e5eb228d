"""Validation errors as lines a person can act on: `<file>:<line>: <field>: <what>; fix: <how>`.

Shared by experiment.yaml and role files: pydantic says what is wrong and where in the data,
`yamllines` says where in the file, and each caller says how to fix what it knows about.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError

from labcoat.experiment.yamllines import Lines, Loc, dotted, line_of

FixFor = Callable[[Mapping[str, Any], Loc], str]
"""`fix_for(error, loc)`: how to fix one pydantic error at a cleaned location."""


def message(error: Mapping[str, Any]) -> str:
    """What is wrong, in pydantic's words without its prefixes, with the bad value shown."""
    msg = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] == "union_tag_not_found":
        return "missing `type:`"
    if "fix:" not in msg and error["type"] != "missing" and not isinstance(
            error.get("input"), dict | list):
        msg += f" (got {error.get('input')!r:.60})"
    return msg


def describe(error: Mapping[str, Any], where: str, lines: Lines, fix_for: FixFor, *,
             clean: Callable[[Loc], Loc] = tuple, default_line: int | None = None) -> str:
    """One line for one pydantic error."""
    loc = clean(tuple(error["loc"]))
    msg = message(error)
    line = line_of(loc, lines) or default_line
    at = f"{where}:{line}" if line else where
    if "fix:" in msg:
        return f"{at}: {dotted(loc)}: {msg}"
    return f"{at}: {dotted(loc)}: {msg}; fix: {fix_for(error, loc)}"


def describe_all(err: ValidationError, where: str, lines: Lines, fix_for: FixFor, **kw: Any,
                 ) -> list[str]:
    """One line per error of `err`."""
    return [describe(e, where, lines, fix_for, **kw) for e in err.errors()]


def problem_list(where: str, what: str, problems: list[str]) -> str:
    """`<where>: invalid <what> (N problems):` and one indented line per problem."""
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return f"{where}: invalid {what} ({count}):\n  - " + "\n  - ".join(problems)
