"""experiment.yaml as pydantic models: the metric, resources, search space, critic, the whole spec.

Every model forbids unknown fields and documents each field; `labcoat.experiment.load` turns
validation errors into lines that name the file, the line, the field and the fix.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from labcoat.experiment.fields import (
    Choice,
    Command,
    MemoryMB,
    ModelSpec,
    OutputPath,
    ParamName,
    RoleName,
    env_name_clashes,
)

MAX_TIMEOUT_S = 30 * 24 * 3600.0
"""Past this a timeout means "never": refused, as timers and the engine cannot hold it."""
MAX_PIDS = 1 << 22
"""Linux's largest pid_max: a pids limit above it is not a limit the kernel takes."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)



class MetricSpec(_Strict):
    """The one number a run optimizes, read from evaluate's JSON object."""

    name: str = Field(min_length=1)
    """Key in the JSON object that evaluate prints last, e.g. `accuracy`."""
    direction: Literal["maximize", "minimize"]
    """Whether a bigger or a smaller value is better."""


class ResourcesSpec(_Strict):
    """Limits for every sandbox of the experiment (role, run and evaluate steps)."""

    cpus: float = Field(1.0, gt=0, le=512)
    """CPU quota in cores; fractions allowed."""
    memory: MemoryMB = 1024
    """Memory limit, e.g. `512m` or `2g` (a bare number means MB); held here in MB. Default 1g."""
    gpus: int = Field(0, ge=0, le=64)
    """GPUs per sandbox."""
    timeout_s: float = Field(600.0, gt=0, le=MAX_TIMEOUT_S)
    """Wall-clock limit of one command (`setup`, `run`, `evaluate`); the process tree is killed.
    At most 30 days."""
    network: Literal["none", "bridge"] = "none"
    """`bridge` only when the experiment needs the network (downloads)."""
    pids: int = Field(256, ge=16, le=MAX_PIDS)
    """Maximum processes and threads in one sandbox (at most Linux's own ceiling, 2**22)."""

    disk: MemoryMB = 10 * 1024
    """What one sandbox may write to /workspace and /outputs together, e.g. `500m` or `20g` (a
    bare number means MB); held here in MB. Default 10g. Past it the command is stopped and the
    subtask fails with "disk limit exceeded"; the space is given back when its sandbox goes."""

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
    default: float | None = None
    """The value the workspace uses when no trial sets it (what the baseline runs); may lie
    outside the range. When every parameter has one, the search brain counts the baseline's
    grade as a trial at these values."""

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
    default: float | None = Field(None, gt=0)
    """The value the workspace uses when no trial sets it (what the baseline runs); may lie
    outside the range. When every parameter has one, the search brain counts the baseline's
    grade as a trial at these values."""

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
    default: int | None = None
    """The value the workspace uses when no trial sets it (what the baseline runs); may lie
    outside the range. When every parameter has one, the search brain counts the baseline's
    grade as a trial at these values."""

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
    default: Choice = None
    """The choice the workspace uses when no trial sets it (what the baseline runs), one of
    `choices`. When every parameter has a default, the search brain counts the baseline's
    grade as a trial at these values."""

    @model_validator(mode="after")
    def _unique(self) -> CategoricalParam:
        seen = [json.dumps(c) for c in self.choices]
        if len(set(seen)) != len(seen):
            raise ValueError(f"choices {self.choices} repeat a value; fix: list each once")
        if self.default is not None and json.dumps(self.default) not in seen:
            raise ValueError(f"default {self.default!r} is not one of the choices "
                             f"{self.choices}; fix: name one of them, or drop `default`")
        return self


SearchParam = Annotated[
    FloatParam | LogFloatParam | IntParam | CategoricalParam, Field(discriminator="type")
]
SearchSpace = dict[ParamName, SearchParam]
"""`{param: space}`: a search space (experiment.yaml's `search_space`, a role's own)."""


def baseline_params(space: dict[str, SearchParam]) -> dict[str, object] | None:
    """The point the baseline runs when every parameter of `space` declares a `default`,
    else None (a categorical default of None counts as none)."""
    if not space or any(p.default is None for p in space.values()):
        return None
    return {name: p.default for name, p in space.items()}
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


class ClaimSpec(_Strict):
    """A number the paper (or whoever wrote the experiment) says a correct run gives. The
    reproducer grades the unmodified baseline over several seeds and says whether it holds:
    give exactly one of `tolerance` and `rel_tolerance`."""

    metric: str = Field(min_length=1)
    """Key in evaluate's JSON object that the claim is about, e.g. `accuracy`."""
    value: float = Field(allow_inf_nan=False)
    """The claimed value, e.g. `0.97`."""
    tolerance: float | None = Field(None, ge=0, allow_inf_nan=False)
    """How far a measured mean may lie from `value` and still agree, in the metric's units."""
    rel_tolerance: float | None = Field(None, gt=0, allow_inf_nan=False)
    """The same as a fraction of `|value|`, e.g. `0.02` for 2 %."""
    source: str = ""
    """Where the claim comes from, e.g. `Table 2, row 3`."""

    @model_validator(mode="after")
    def _one_tolerance(self) -> ClaimSpec:
        if (self.tolerance is None) == (self.rel_tolerance is None):
            given = ("both `tolerance` and `rel_tolerance` given" if self.tolerance is not None
                     else "no `tolerance` or `rel_tolerance` given")
            raise ValueError(f"{given}; fix: give exactly one, e.g. `tolerance: 0.01` or "
                             "`rel_tolerance: 0.02`")
        return self

    @property
    def band(self) -> float:
        """The tolerance in the metric's units (half the width of the band around `value`)."""
        if self.tolerance is not None:
            return self.tolerance
        return float(self.rel_tolerance or 0.0) * abs(self.value)


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
    resources: ResourcesSpec = Field(default_factory=lambda: ResourcesSpec())
    """Sandbox limits."""
    search_space: dict[ParamName, SearchParam] = Field(default_factory=dict)
    """Parameters for the search brain, delivered as params.json and LABCOAT_PARAM_<NAME>."""
    roles: list[RoleName] | None = None
    """Roles the manager may use; None means every available role."""
    critic: CriticSpec = Field(default_factory=lambda: CriticSpec())
    """Critic settings."""
    outputs: list[OutputPath] | None = None
    """Workspace paths that `run` writes and `evaluate` needs; None means the whole workspace."""
    models: dict[RoleName, ModelSpec] = Field(default_factory=dict)
    """Per-role model specs, e.g. `{critic: "openai:gpt-4.1"}`; `--role-model` overrides."""
    claims: list[ClaimSpec] = Field(default_factory=list)
    """Numbers the baseline is said to reach (`{metric, value, tolerance | rel_tolerance,
    source}`); the reproducer checks each over the critic's seeds plus the run seed."""

    role_params: dict[RoleName, dict[ParamName, SearchParam]] = Field(default_factory=dict)
    """Parameter spaces of custom roles, `{role: {param: space}}`: the search brain proposes
    values for each subtask of that role, as `search_space` does for the engineer. Overrides
    a role's own `search_space` attribute."""

    @model_validator(mode="after")
    def _distinct_env_names(self) -> ExperimentSpec:
        clashes = [c for space in [self.search_space, *self.role_params.values()]
                   for c in env_name_clashes(space)]
        if clashes:
            raise ValueError(clashes[0])
        return self

    @model_validator(mode="after")
    def _role_params_named(self) -> ExperimentSpec:
        builtin = {"reproducer", "engineer", "critic", "manager"}
        for role in self.role_params:
            if role in builtin:
                raise ValueError(f"role_params: {role!r} is a built-in role; fix: give the "
                                 "engineer's parameters in `search_space`")
            if self.roles is not None and role not in self.roles:
                raise ValueError(f"role_params: {role!r} is not in `roles:`, so no subtask "
                                 f"would ever use them; fix: add {role} to roles")
        return self
