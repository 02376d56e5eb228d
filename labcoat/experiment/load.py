"""Loading an experiment folder: `load_experiment(folder)` validates everything at once.

It raises one `SpecError` that lists every problem, each as
`<file>:<line>: <field.path>: <what is wrong>; fix: <how>`. Nothing starts on an invalid spec.
The layout it expects::

    <folder>/experiment.yaml   the spec
    <folder>/workspace/        starting code (required)
    <folder>/grader/           files only the evaluate step sees, read-only at /grader (optional)
    <folder>/roles/*.md        Markdown role files (optional)
    <folder>/prompts/          prompt template overrides (optional)
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from labcoat.errors import SpecError
from labcoat.experiment.fields import env_name_clashes
from labcoat.experiment.messages import describe_all, problem_list
from labcoat.experiment.rolefile import scan_role_files
from labcoat.experiment.spec import (
    PARAM_TYPES,
    ClaimSpec,
    CriticSpec,
    ExperimentSpec,
    MetricSpec,
    ResourcesSpec,
)
from labcoat.experiment.yamllines import Lines, Loc, parse_mapping, read_source
from labcoat.treehash import tree_digest

SPEC_FILE = "experiment.yaml"


@dataclass(frozen=True)
class Experiment:
    """A validated spec plus the folder it lives in."""

    spec: ExperimentSpec
    dir: Path
    """The experiment folder, absolute."""
    spec_path: Path
    """The experiment.yaml file, absolute."""

    @property
    def workspace_dir(self) -> Path:
        return self.dir / "workspace"

    @property
    def grader_dir(self) -> Path:
        return self.dir / "grader"

    @property
    def roles_dir(self) -> Path:
        return self.dir / "roles"

    @property
    def prompts_dir(self) -> Path:
        return self.dir / "prompts"

    def goal(self, override: str | None = None) -> str:
        """The goal to pursue: `override` (from --goal), else the spec's."""
        goal = (override or self.spec.goal or "").strip()
        if not goal:
            raise SpecError(f"{self.spec_path}: no goal; fix: add `goal: <what to achieve>` "
                            "to experiment.yaml or pass `labcoat run --goal TEXT`")
        return goal


def experiment_hash(exp: Experiment) -> str:
    """sha256 of the validated spec and the starting workspace: same hash, same experiment."""
    spec = json.dumps(exp.spec.model_dump(mode="json"), sort_keys=True).encode()
    tree = tree_digest(exp.workspace_dir, skip=frozenset({".git", "__pycache__"}))
    return hashlib.sha256(spec + b"\0" + tree.encode()).hexdigest()


def grader_hash(exp: Experiment) -> str:
    """sha256 over the grader folder's relative paths and bytes; empty/absent: hash of nothing."""
    return tree_digest(exp.grader_dir)


_EXPECTED_KEYS = "name:, goal:, run:, evaluate:, metric:"


def load_experiment(path: Path) -> Experiment:
    """Read and validate `path` (the experiment folder or its experiment.yaml).

    Raises `SpecError` listing every problem at once.
    """
    spec_path = _find_spec_file(Path(path))
    where = str(spec_path)
    text, unreadable = read_source(spec_path)
    if text is None:
        raise SpecError(problem_list(where, "experiment spec", [str(unreadable)]))
    data, lines, problems = parse_mapping(text, where, expect=_EXPECTED_KEYS)
    spec = None
    if data is not None:
        try:
            spec = ExperimentSpec.model_validate(data)
        except ValidationError as err:
            problems += describe_all(err, where, lines, _fix_for, clean=_clean_loc)
            problems += _unreported_clashes(data, problems, where, lines)
    problems += _folder_problems(spec_path.parent)
    problems += [line for found in scan_role_files(spec_path.parent / "roles")[1].values()
                 for line in found]
    if problems or spec is None:
        raise SpecError(problem_list(where, "experiment spec", problems))
    return Experiment(spec=spec, dir=spec_path.parent.resolve(), spec_path=spec_path.resolve())


def experiment_from_log(spec: Mapping[str, Any], folder: Path) -> Experiment:
    """The experiment as validated at run start (its dump in `run_started`), in `folder`."""
    return Experiment(spec=ExperimentSpec.model_validate(spec), dir=folder,
                      spec_path=folder / SPEC_FILE)


def _unreported_clashes(data: dict[str, Any], problems: list[str], where: str,
                        lines: Lines) -> list[str]:
    """Name clashes pydantic skips when other search_space errors stop the model check."""
    at = f"{where}:{lines.get(('search_space',), 1)}: search_space"
    clashes = env_name_clashes(data.get("search_space"))
    return [f"{at}: {c}" for c in clashes if not any(c in p for p in problems)]


def _find_spec_file(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.exists():
        raise SpecError(f"{path}: no such experiment folder; fix: pass a folder that holds "
                        f"{SPEC_FILE}, e.g. `labcoat run experiments/digits`")
    if not (path / SPEC_FILE).is_file():
        raise SpecError(f"{path}: no {SPEC_FILE} in this folder; fix: create {path / SPEC_FILE} "
                        "with name, goal, run, evaluate and metric (see experiments/digits)")
    return path / SPEC_FILE


def _folder_problems(folder: Path) -> list[str]:
    workspace, grader = folder / "workspace", folder / "grader"
    problems = [] if workspace.is_dir() else [
        f"{workspace}: {'not a folder' if workspace.exists() else 'missing workspace/ folder'}; "
        "fix: create it and put the starting code in it (it becomes the run's git workspace)"]
    if grader.exists() and not grader.is_dir():
        problems.append(f"{grader}: not a folder, so no grade could ever see it; fix: make "
                        "grader/ a folder holding the evaluate script and held-out data")
    for tree in (workspace, grader):
        problems += _tree_problems(tree) if tree.is_dir() else []
    return problems


_NOT_COPIED = frozenset({".git", "__pycache__"})
"""Folders a run's workspace never takes (`Workspace.create` and the hash leave them out)."""
_MAX_NAMED = 3
"""Bad entries named per folder (the count says how many more)."""


def _tree_problems(root: Path) -> list[str]:
    """Entries a run could not copy, hash or log: names that are not UTF-8 (the log is JSON),
    and FIFOs, sockets or devices (reading one blocks or never ends)."""
    bad: list[str] = []
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in _NOT_COPIED]
        for name in [*dirs, *files]:
            why = _entry_problem(os.path.join(top, name), name)
            if why:
                rel = os.fsencode(os.path.relpath(os.path.join(top, name), root))
                bad.append(f"{root}/{rel.decode('utf-8', 'backslashreplace')}: {why}")
    more = [f"{root}: and {len(bad) - _MAX_NAMED} more like these"] * (len(bad) > _MAX_NAMED)
    return bad[:_MAX_NAMED] + more


def _entry_problem(path: str, name: str) -> str:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not UTF-8; fix: rename it (e.g. `mv` it to an ASCII name)"
    try:
        mode = os.lstat(path).st_mode
    except OSError as err:
        return f"cannot be read ({err.strerror}); fix: check its permissions"
    if stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISLNK(mode):
        return ""
    return "not a file, folder or link (a FIFO, socket or device); fix: remove it"


# --- how to fix each kind of problem ----------------------------------------------------------

_FIELD_HINTS = {
    "name": "add `name: my-experiment`",
    "run": "add `run: <command>` that trains or produces outputs in /workspace, "
           "e.g. `run: python train.py`",
    "evaluate": "add `evaluate: <command>` whose last stdout line is a JSON object of metrics, "
                "e.g. `evaluate: python /grader/evaluate.py`",
    "metric": "add `metric: {name: accuracy, direction: maximize}`",
    "metric.direction": "write `direction: maximize` or `direction: minimize`",
    "resources.network": "write `network: none` (default) or `network: bridge`",
    "resources.cpus": "give cores as a number, e.g. `cpus: 2` or `cpus: 0.5`",
    "resources.pids": "give a number of processes, e.g. `pids: 512` (Linux allows up to 2**22)",
    "resources.timeout_s": "give seconds, e.g. `timeout_s: 3600` (at most 30 days)",
    "resources.gpus": "give a number of GPUs, e.g. `gpus: 1` (0 for none)",
    "search_space.*.type": f"write `type:` as one of {', '.join(PARAM_TYPES)}",
    "search_space.*.choices": "list at least one value, e.g. `choices: [a, b]`",
    "claims": "list claims as `- {metric: accuracy, value: 0.97, tolerance: 0.01, source: "
              "Table 2}`",
    "claims.*.metric": "name a key of evaluate's JSON object, e.g. `metric: accuracy`",
    "claims.*.value": "give the claimed number, e.g. `value: 0.97`",
    "claims.*.tolerance": "give a non-negative number in the metric's units, e.g. "
                          "`tolerance: 0.01`",
    "claims.*.rel_tolerance": "give a positive fraction of the value, e.g. `rel_tolerance: 0.02`",
}
_SECTIONS: dict[str, type[BaseModel]] = {
    "": ExperimentSpec, "metric": MetricSpec, "resources": ResourcesSpec, "critic": CriticSpec,
    "claims.*": ClaimSpec,
}


def _clean_loc(loc: Loc) -> Loc:
    """Drop pydantic's discriminator tags and `[key]` markers from an error location."""
    parts = [p for p in loc if p != "[key]"]
    if len(parts) > 2 and parts[0] == "search_space" and parts[2] in PARAM_TYPES:
        del parts[2]
    return tuple(parts)


def _generic(loc: Loc) -> str:
    """`search_space.lr.low` -> `search_space.*.low`, for looking up hints."""
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in ("search_space", "claims"):
        parts[1] = "*"
    return ".".join(parts)


def _known_fields(loc: Loc, raw_loc: Loc) -> list[str]:
    if loc and loc[0] == "search_space" and len(raw_loc) > 2 and raw_loc[2] in PARAM_TYPES:
        return list(PARAM_TYPES[str(raw_loc[2])].model_fields)
    model = _SECTIONS.get(_generic(loc))
    return list(model.model_fields) if model else []


def _fix_for(error: Mapping[str, Any], loc: Loc) -> str:
    kind, last = error["type"], str(loc[-1]) if loc else ""
    hint = _FIELD_HINTS.get(_generic(loc))
    if kind == "extra_forbidden":
        known = _known_fields(loc[:-1], tuple(error["loc"]))
        close = difflib.get_close_matches(last, known, n=1)
        return f"did you mean `{close[0]}`?" if close else (
            f"remove it (known fields here: {', '.join(known)})" if known else "remove it")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = str((error.get("ctx") or {}).get("tag", ""))
        close = difflib.get_close_matches(tag, list(PARAM_TYPES), n=1)
        return f"did you mean `type: {close[0]}`?" if close else _FIELD_HINTS["search_space.*.type"]
    if hint:
        return hint
    if kind == "missing":
        return f"add `{last}:`"
    return "correct the value (see the experiment.yaml fields in the README)"
