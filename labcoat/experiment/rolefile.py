"""Markdown role files: `<experiment>/roles/*.md`, YAML front matter plus instructions.

    ---
    name: skeptic
    description: Looks for leakage between train and test data.
    model: anthropic:claude-sonnet-4-6     # optional; else the run's --model
    tools: [bash, read_file]               # optional; else the tool loop's defaults
    ---
    You are a skeptic. Read the training code and ...

The body is the role's instructions. This module parses and validates the file into a
`RoleFile`; `labcoat.agents.fileroles` turns one into a role that the LLM tool loop runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from labcoat.errors import SpecError
from labcoat.experiment.fields import ModelSpec, RoleName
from labcoat.experiment.messages import describe_all, problem_list
from labcoat.experiment.yamllines import Lines, Loc, parse_mapping, read_source

FENCE = "---"
_SHAPE = ("start the file with a front matter block:\n      ---\n      name: my-role\n"
          "      description: what it does\n      ---\n    followed by the instructions")


def _check_tool(name: str) -> str:
    if not name.isidentifier():
        raise ValueError(f"{name!r} is not a tool name; fix: use names like bash, read_file")
    return name


class RoleFileSpec(BaseModel):
    """The front matter of a role file."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: RoleName
    """The role's short name, used in subtasks and in `roles:` of experiment.yaml."""
    description: str = Field(min_length=1)
    """One or two sentences: the manager reads this to decide what to hand the role."""
    model: ModelSpec | None = None
    """Model spec for this role (e.g. `openai:gpt-4.1`); None means the run's `--model`."""
    tools: list[Annotated[str, AfterValidator(_check_tool)]] | None = None
    """Tools the role may call; None means the tool loop's default set."""


@dataclass(frozen=True)
class RoleFile:
    """A valid role file: what its front matter says and its body."""

    name: str
    description: str
    instructions: str
    """The body of the file: the role's instructions."""
    path: Path
    model: str | None = None
    """Model spec from the front matter; None means the run's `--model`."""
    tools: tuple[str, ...] | None = None
    """Tool names from the front matter; None means the tool loop's defaults."""


def split_front_matter(text: str) -> tuple[str, str, int] | None:
    """(front matter, body, line the front matter starts on) or None without a `---` block."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != FENCE:
        return None
    for i, line in enumerate(lines[1:], start=1):
        if line.strip() == FENCE:
            return "".join(lines[1:i]), "".join(lines[i + 1:]), 2
    return None


def read_role_file(path: Path) -> RoleFile:
    """Parse and validate one role file; `SpecError` lists every problem with its line."""
    problems: list[str] = []
    role = _parse(path, problems)
    if role is None:
        raise SpecError(problem_list(str(path), "role file", problems))
    return role


def _parse(path: Path, problems: list[str]) -> RoleFile | None:
    text, unreadable = read_source(path)
    if text is None:
        problems.append(str(unreadable))
        return None
    parts = split_front_matter(text)
    if parts is None:
        problems.append(f"{path}:1: no front matter; fix: {_SHAPE}")
        return None
    head, body, first = parts
    data, lines, yaml_problems = parse_mapping(
        head, str(path), first_line=first, expect="name:, description:, model:, tools:")
    problems += yaml_problems
    spec = _validate(data, lines, str(path), problems) if data is not None else None
    if not body.strip():
        problems.append(f"{path}: the body is empty; fix: write the role's instructions below "
                        "the closing ---")
    if spec is None or problems:
        return None
    tools = tuple(spec.tools) if spec.tools is not None else None
    return RoleFile(name=spec.name, description=spec.description.strip(),
                    instructions=body.strip(), path=path, model=spec.model, tools=tools)


def _validate(data: dict[str, Any], lines: Lines, where: str,
              problems: list[str]) -> RoleFileSpec | None:
    try:
        return RoleFileSpec.model_validate(data)
    except ValidationError as err:
        problems += describe_all(err, where, lines, _fix, default_line=2)
    return None


def _fix(error: Mapping[str, Any], loc: Loc) -> str:
    if error["type"] == "extra_forbidden":
        return "remove it (role files know name, description, model, tools)"
    if error["type"] == "missing":
        return f"add `{loc[-1]}:` to the front matter"
    return "correct the value"


def scan_role_files(folder: Path) -> tuple[list[RoleFile], dict[Path, list[str]]]:
    """The valid role files in `folder`, and the problems of each invalid one (a name that an
    earlier file already uses is a problem too)."""
    roles: list[RoleFile] = []
    bad: dict[Path, list[str]] = {}
    seen: dict[str, Path] = {}
    for path in find_role_files(folder):
        problems: list[str] = []
        found = _parse(path, problems)
        if found is not None and found.name in seen:
            problems.append(f"{path}: role name {found.name!r} is also used by "
                            f"{seen[found.name]}; fix: rename one")
        if found is None or problems:
            bad[path] = problems
            continue
        seen[found.name] = path
        roles.append(found)
    return roles, bad


def find_role_files(folder: Path) -> list[Path]:
    """The `*.md` files of a roles folder, sorted; none when the folder is absent."""
    return sorted(folder.glob("*.md")) if folder.is_dir() else []
