"""experiment.yaml: the validated spec of an experiment and the folder around it.

`load_experiment(folder)` reads and validates everything at once and raises one `SpecError` that
lists every problem, each as `<file>:<line>: <field.path>: <what is wrong>; fix: <how>`. Nothing
starts on an invalid spec. The layout it expects::

    <folder>/experiment.yaml   this spec
    <folder>/workspace/        starting code (required)
    <folder>/grader/           files only the evaluate step sees, read-only at /grader (optional)
    <folder>/roles/*.md        Markdown role files (optional)
    <folder>/prompts/          prompt template overrides (optional)
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from labcoat.errors import SpecError
from labcoat.orchestrator.yamllines import Lines, dotted, line_of, parse_mapping
from labcoat.sandboxes.base import SandboxSpec
from labcoat.treehash import tree_digest

SPEC_FILE = "experiment.yaml"
PARAM_ENV_PREFIX = "LABCOAT_PARAM_"
SEED_ENV = "LABCOAT_SEED"
_ENV_SUFFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ROLE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]*$")
_MODEL_SPEC = re.compile(r"^(search|[a-z][a-z0-9_-]*:\S.*)$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNIT_MB = {"": 1.0, "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0 * 1024}


# --------------------------------------------------------------------------- field types


def parse_memory(value: object) -> int:
    """`"512m"`, `"2g"`, `"1.5GiB"` or a bare number of MB -> whole MB."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a size; fix: write a size like 512m or 2g")
    match = _SIZE.match(str(value))
    if match is None:
        raise ValueError(f"{value!r} is not a size; fix: write a size like 512m or 2g")
    mb = int(float(match.group(1)) * _UNIT_MB[match.group(2).lower()])
    if mb < 16:
        raise ValueError(f"{value!r} is under 16 MB; fix: give the sandbox at least 64m")
    return mb


def _check_param_name(name: str) -> str:
    if not _ENV_SUFFIX.match(name):
        raise ValueError(
            f"parameter name {name!r} cannot be part of an environment variable "
            f"({PARAM_ENV_PREFIX}<NAME>); fix: use letters, digits and _ only, e.g. "
            f"{re.sub(r'[^A-Za-z0-9_]', '_', name) or 'param'!r}"
        )
    return name


def _check_role_name(name: str) -> str:
    if not _ROLE_NAME.match(name):
        raise ValueError(f"{name!r} is not a role name; fix: use a short name like `engineer`"
                         " or a dotted path like `package.module:Class`")
    return name


def _check_model_spec(spec: str) -> str:
    if not _MODEL_SPEC.match(spec):
        raise ValueError(f"{spec!r} is not a model spec; fix: write `search`, "
                         "`anthropic:MODEL` or `openai:MODEL`")
    return spec


def _check_output_path(path: str) -> str:
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"{path!r} leaves the workspace; fix: give a path relative to "
                         "/workspace, e.g. `model.pkl` or `out/`")
    return path


Command = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
MemoryMB = Annotated[int, BeforeValidator(parse_memory)]
ParamName = Annotated[str, AfterValidator(_check_param_name)]
RoleName = Annotated[str, AfterValidator(_check_role_name)]
ModelSpec = Annotated[str, AfterValidator(_check_model_spec)]
OutputPath = Annotated[str, StringConstraints(min_length=1), AfterValidator(_check_output_path)]
Choice = str | int | float | bool | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


# --------------------------------------------------------------------------- sections


class MetricSpec(_Strict):
    """The one number a run optimizes, read from evaluate's JSON object."""

    name: str = Field(min_length=1)
    """Key in the JSON object that evaluate prints last, e.g. `accuracy`."""
    direction: Literal["maximize", "minimize"]
    """Whether a bigger or a smaller value is better."""

    def better(self, a: float, b: float | None) -> bool:
        """True when `a` beats `b`; anything beats None."""
        if b is None:
            return True
        return a > b if self.direction == "maximize" else a < b


class ResourcesSpec(_Strict):
    """Limits for every sandbox of the experiment (role, run and evaluate steps)."""

    cpus: float = Field(1.0, gt=0, le=512)
    """CPU quota in cores; fractions allowed."""
    memory: MemoryMB = 1024
    """Memory limit, e.g. `512m` or `2g` (a bare number means MB); held here in MB. Default 1g."""
    gpus: int = Field(0, ge=0)
    """GPUs per sandbox."""
    timeout_s: float = Field(600.0, gt=0)
    """Wall-clock limit of one command (`setup`, `run`, `evaluate`); the process tree is killed."""
    network: Literal["none", "bridge"] = "none"
    """`bridge` only when the experiment needs the network (downloads)."""
    pids: int = Field(256, ge=16)
    """Maximum processes and threads in one sandbox."""

    @property
    def memory_mb(self) -> int:
        return self.memory


def _check_range(low: float, high: float) -> None:
    if not low < high:
        raise ValueError(f"low ({low}) must be below high ({high}); fix: swap them or widen"
                         " the range")


class FloatParam(_Strict):
    """A real number drawn uniformly from [low, high]."""

    type: Literal["float"]
    """Parameter kind."""
    low: float
    """Smallest value."""
    high: float
    """Largest value."""
    step: float | None = Field(None, gt=0)
    """Grid step; None for a continuous range."""

    @model_validator(mode="after")
    def _range(self) -> FloatParam:
        _check_range(self.low, self.high)
        return self


class LogFloatParam(_Strict):
    """A positive real number drawn log-uniformly from [low, high] (learning rates, C, ...)."""

    type: Literal["log_float"]
    """Parameter kind."""
    low: float
    """Smallest value; must be above 0."""
    high: float
    """Largest value."""

    @model_validator(mode="after")
    def _range(self) -> LogFloatParam:
        if self.low <= 0:
            raise ValueError(f"low ({self.low}) must be above 0 on a log scale; fix: use a small"
                             " positive number like 1e-5, or `type: float`")
        _check_range(self.low, self.high)
        return self


class IntParam(_Strict):
    """An integer drawn from low..high inclusive."""

    type: Literal["int"]
    """Parameter kind."""
    low: int
    """Smallest value."""
    high: int
    """Largest value."""
    step: int = Field(1, ge=1)
    """Grid step."""

    @model_validator(mode="after")
    def _range(self) -> IntParam:
        _check_range(self.low, self.high)
        return self


class CategoricalParam(_Strict):
    """One of a fixed list of values."""

    type: Literal["categorical"]
    """Parameter kind."""
    choices: list[Choice] = Field(min_length=1)
    """The values to choose from (strings, numbers, booleans); no duplicates."""

    @model_validator(mode="after")
    def _unique(self) -> CategoricalParam:
        seen = [json.dumps(c) for c in self.choices]
        if len(set(seen)) != len(seen):
            raise ValueError(f"choices {self.choices} repeat a value; fix: list each once")
        return self


SearchParam = Annotated[
    FloatParam | LogFloatParam | IntParam | CategoricalParam, Field(discriminator="type")
]
PARAM_TYPES: dict[str, type[_Strict]] = {
    "float": FloatParam, "log_float": LogFloatParam, "int": IntParam,
    "categorical": CategoricalParam,
}


class CriticSpec(_Strict):
    """How the critic checks that a gain is real."""

    seeds: int = Field(2, ge=1, le=50)
    """Extra seeds the critic re-runs each leading candidate with."""
    leaders: int = Field(1, ge=1)
    """How many of the best candidates the critic re-runs each iteration."""
    noise_sigmas: float = Field(2.0, ge=0)
    """A gain within this many seed standard deviations is marked not reproducible."""


class ExperimentSpec(_Strict):
    """The whole of experiment.yaml."""

    name: str = Field(min_length=1)
    """Short name of the experiment, used in run ids and reports."""
    description: str = ""
    """Free text for people and for the manager's prompt."""
    goal: str | None = None
    """The research goal; `labcoat run --goal` overrides it."""
    image: str | None = None
    """Sandbox image; None means labcoat's own (`labcoat sandbox build`)."""
    setup: Command | None = None
    """Command run once in each fresh sandbox before `run` (e.g. installs); optional."""
    run: Command
    """Command that trains / produces outputs inside /workspace (no grader present)."""
    evaluate: Command
    """Command whose last stdout line is a JSON object of metrics; sees the grader at /grader."""
    metric: MetricSpec
    """The metric to optimize."""
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    """Sandbox limits."""
    search_space: dict[ParamName, SearchParam] = Field(default_factory=dict)
    """Parameters for the search brain, delivered as params.json and LABCOAT_PARAM_<NAME>."""
    roles: list[RoleName] | None = None
    """Roles the manager may use; None means every available role."""
    critic: CriticSpec = Field(default_factory=CriticSpec)
    """Critic settings."""
    outputs: list[OutputPath] | None = None
    """Workspace paths that `run` writes and `evaluate` needs; None means the whole workspace."""
    models: dict[RoleName, ModelSpec] = Field(default_factory=dict)
    """Per-role model specs, e.g. `{critic: "openai:gpt-4.1"}`; `--role-model` overrides."""

    @model_validator(mode="after")
    def _distinct_env_names(self) -> ExperimentSpec:
        clashes = env_name_clashes(self.search_space)
        if clashes:
            raise ValueError(clashes[0])
        return self


def env_name_clashes(names: object) -> list[str]:
    """Parameter names that become the same LABCOAT_PARAM_<NAME> variable."""
    upper: dict[str, str] = {}
    clashes = []
    for name in names if isinstance(names, dict) else ():
        other = upper.setdefault(str(name).upper(), str(name))
        if other != name:
            clashes.append(f"parameters {other!r} and {name!r} both become "
                           f"{PARAM_ENV_PREFIX}{str(name).upper()}; fix: rename one")
    return clashes


# --------------------------------------------------------------------------- the experiment


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

    @property
    def image(self) -> str:
        from labcoat.sandboxes.image import default_image

        return self.spec.image or default_image()

    def goal(self, override: str | None = None) -> str:
        """The goal to pursue: `override` (from --goal), else the spec's."""
        goal = (override or self.spec.goal or "").strip()
        if not goal:
            raise SpecError(f"{self.spec_path}: no goal; fix: add `goal: <what to achieve>` "
                            "to experiment.yaml or pass `labcoat run --goal TEXT`")
        return goal

    def sandbox_spec(self, run_id: str, subtask_id: str = "", *,
                     env: Mapping[str, str] | None = None, **overrides: Any) -> SandboxSpec:
        """A `SandboxSpec` with this experiment's image and resources; `overrides` win."""
        res = self.spec.resources
        fields: dict[str, Any] = dict(
            image=self.image, run_id=run_id, subtask_id=subtask_id, cpus=res.cpus,
            memory_mb=res.memory_mb, pids_limit=res.pids, gpus=res.gpus, network=res.network,
            env=dict(env or {}),
        )
        return SandboxSpec(**(fields | overrides))


def trial_env(params: Mapping[str, Any], seed: int) -> dict[str, str]:
    """`LABCOAT_SEED` and one `LABCOAT_PARAM_<NAME>` per parameter (strings verbatim, else JSON)."""
    env = {SEED_ENV: str(seed)}
    for name, value in params.items():
        text = value if isinstance(value, str) else json.dumps(value)
        env[PARAM_ENV_PREFIX + name.upper()] = text
    return env


# --------------------------------------------------------------------------- hashes


def experiment_hash(exp: Experiment) -> str:
    """sha256 of the validated spec and the starting workspace: same hash, same experiment."""
    spec = json.dumps(exp.spec.model_dump(mode="json"), sort_keys=True).encode()
    tree = tree_digest(exp.workspace_dir, skip=frozenset({".git", "__pycache__"}))
    return hashlib.sha256(spec + b"\0" + tree.encode()).hexdigest()


def grader_hash(exp: Experiment) -> str:
    """sha256 over the grader folder's relative paths and bytes; empty/absent: hash of nothing."""
    return tree_digest(exp.grader_dir)


# --------------------------------------------------------------------------- loading


_EXPECTED_KEYS = "name:, goal:, run:, evaluate:, metric:"


def load_experiment(path: Path) -> Experiment:
    """Read and validate `path` (the experiment folder or its experiment.yaml).

    Raises `SpecError` listing every problem at once.
    """
    spec_path = _find_spec_file(Path(path))
    text = spec_path.read_text(encoding="utf-8")
    where = str(spec_path)
    data, lines, problems = parse_mapping(text, where, expect=_EXPECTED_KEYS)
    spec = None
    if data is not None:
        try:
            spec = ExperimentSpec.model_validate(data)
        except ValidationError as err:
            problems += [_describe(e, where, lines) for e in err.errors()]
            problems += _unreported_clashes(data, problems, where, lines)
    problems += _folder_problems(spec_path.parent)
    problems += _role_file_problems(spec_path.parent / "roles")
    if problems or spec is None:
        raise SpecError(f"{where}: invalid experiment spec ({len(problems)} problem"
                        f"{'s' if len(problems) != 1 else ''}):\n  - " + "\n  - ".join(problems))
    return Experiment(spec=spec, dir=spec_path.parent.resolve(), spec_path=spec_path.resolve())


def _role_file_problems(folder: Path) -> list[str]:
    from labcoat.agents.rolefile import scan_role_files  # agents imports this module

    return [line for lines in scan_role_files(folder)[1].values() for line in lines]


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
    workspace = folder / "workspace"
    if workspace.is_dir():
        return []
    return [f"{workspace}: missing workspace/ folder; fix: create it and put the starting code "
            "in it (it becomes the run's git workspace)"]


# --------------------------------------------------------------------------- error messages

_FIELD_HINTS = {
    "name": "add `name: my-experiment`",
    "run": "add `run: <command>` that trains or produces outputs in /workspace, "
           "e.g. `run: python train.py`",
    "evaluate": "add `evaluate: <command>` whose last stdout line is a JSON object of metrics, "
                "e.g. `evaluate: python /grader/evaluate.py`",
    "metric": "add `metric: {name: accuracy, direction: maximize}`",
    "metric.direction": "write `direction: maximize` or `direction: minimize`",
    "resources.network": "write `network: none` (default) or `network: bridge`",
    "search_space.*.type": f"write `type:` as one of {', '.join(PARAM_TYPES)}",
    "search_space.*.choices": "list at least one value, e.g. `choices: [a, b]`",
}
_SECTIONS: dict[str, type[BaseModel]] = {
    "": ExperimentSpec, "metric": MetricSpec, "resources": ResourcesSpec, "critic": CriticSpec,
}


def _clean_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Drop pydantic's discriminator tags and `[key]` markers from an error location."""
    parts = [p for p in loc if p != "[key]"]
    if len(parts) > 2 and parts[0] == "search_space" and parts[2] in PARAM_TYPES:
        del parts[2]
    return tuple(parts)


def _generic(loc: tuple[str | int, ...]) -> str:
    """`search_space.lr.low` -> `search_space.*.low`, for looking up hints."""
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] == "search_space":
        parts[1] = "*"
    return ".".join(parts)


def _known_fields(loc: tuple[str | int, ...], raw_loc: tuple[str | int, ...]) -> list[str]:
    if loc and loc[0] == "search_space" and len(raw_loc) > 2 and raw_loc[2] in PARAM_TYPES:
        return list(PARAM_TYPES[str(raw_loc[2])].model_fields)
    model = _SECTIONS.get(".".join(str(p) for p in loc))
    return list(model.model_fields) if model else []


def _fix_for(error: Mapping[str, Any], loc: tuple[str | int, ...]) -> str:
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
    return "correct the value (see the experiment.yaml fields in DESIGN.md)"


def _message(error: Mapping[str, Any]) -> str:
    msg = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown field"
    if error["type"] in ("union_tag_not_found",):
        return "missing `type:`"
    if "fix:" not in msg and error["type"] != "missing" and not isinstance(
            error.get("input"), dict | list):
        msg += f" (got {error.get('input')!r:.60})"
    return msg


def _describe(error: Mapping[str, Any], where: str, lines: Lines) -> str:
    """One line: `<file>:<line>: <field>: <what>; fix: <how>`."""
    loc = _clean_loc(tuple(error["loc"]))
    msg = _message(error)
    line = line_of(loc, lines)
    at = f"{where}:{line}" if line else where
    if "fix:" in msg:
        return f"{at}: {dotted(loc)}: {msg}"
    return f"{at}: {dotted(loc)}: {msg}; fix: {_fix_for(error, loc)}"
