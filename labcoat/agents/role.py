"""The role API: what the manager can hand a subtask to, and what a role works with.

A role is anything with a `name`, a `description` (the manager reads it) and
`async run(subtask, ctx) -> RoleResult`. Built-in roles, entry-point plugins
(`labcoat.roles`) and Markdown role files all end up as objects of this shape.
docs/roles.md describes every field below with a worked example.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from labcoat.experiment import Experiment
from labcoat.sandboxes.base import Sandbox

Verdict = Literal["reproducible", "not_reproducible", "suspicious", "ok"]
"""A critic's verdict: the gain is real / within the noise / doubtful / fine (no reference)."""


class Subtask(BaseModel):
    """One unit of work the manager planned. Persisted in the log (`plan_proposed`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    """Stable id, sortable by plan order, e.g. `it002-03`."""
    iteration: int
    role: str
    instructions: str
    base_commit: str
    """The workspace commit the role starts from (re-runs start here too)."""
    params: dict[str, JsonValue] = Field(default_factory=dict)
    """Trial parameters: written to /workspace/params.json and LABCOAT_PARAM_<NAME>."""
    seed: int = 0
    """Delivered as LABCOAT_SEED."""
    target: str | None = None
    """For review work: the subtask whose result is examined."""
    seeds: tuple[int, ...] = ()
    """For reproduction: the extra seeds to grade the target with."""


class Critique(BaseModel):
    """A critic's verdict on another subtask's result."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str
    verdict: Verdict
    reason: str
    metrics_by_seed: dict[str, float] = Field(default_factory=dict)
    mean: float | None = None
    std: float | None = None


class RoleResult(BaseModel):
    """What a role hands back. The workspace itself is collected by the loop, not the role."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ok: bool = True
    summary: str = ""
    """One paragraph: what was done and why (goes into the commit message and the report)."""
    error: str | None = None
    """Why the subtask failed, when `ok` is False."""
    critique: Critique | None = None
    """Set by reviewing roles."""
    grade: bool = True
    """Grade the resulting commit. Roles that only review set False."""
    changes: bool = True
    """False when the role changed nothing: its result commit keeps the base tree as it was."""
    candidate: bool | None = None
    """False marks the result as a *measurement* (an ablation, an analysis): graded, committed
    and shown like any result, but never `labcoat/best` and never sent to the critic. None: the
    role's declared default, its class attribute `candidate` (True when it has none)."""


GradeFn = Callable[[str, int], Awaitable[dict[str, float] | None]]
"""`await grade(commit, seed)` runs the honest run+evaluate pipeline; None when grading failed."""
Emit = Callable[[str, Mapping[str, Any]], None]
"""`emit(type, fields)` appends one event to the run's log."""


@dataclass
class RoleContext:
    """What a role may use while it works. The run state is a read-only view."""

    run_id: str
    spec: Experiment
    """The validated experiment (`spec.spec` is experiment.yaml, `spec.dir` its folder)."""
    sandbox: Sandbox | None
    """The role's own sandbox holding the base commit at /workspace (None for roles whose
    `uses_sandbox` attribute is False, e.g. a critic that only re-grades)."""
    emit: Emit
    """Append an event of `type` with fields to the log (e.g. `sandbox_exec`)."""
    grade: GradeFn
    """Grade a commit with a seed in fresh sandboxes; the grader stays out of the role's reach."""
    state: Any = None
    """Read-only `RunState` (fold of the log) for roles that plan from history."""
    model: Any = None
    """The role's model (`labcoat.agents.llm.models.Model`) or None for the search brain."""
    limits: Mapping[str, Any] = field(default_factory=dict)
    """Turn/token/time limits for LLM roles."""
    instructions: str = ""
    """Extra instructions from a Markdown role file's body."""


@runtime_checkable
class Role(Protocol):
    """Optional class attributes a role may declare: `candidate = False` (its results are
    measurements, see `RoleResult.candidate`), `search_space = {param: space}` (the search
    brain proposes values for it, as experiment.yaml's `role_params` does), `uses_sandbox`."""

    name: str
    description: str

    async def run(self, subtask: Subtask, ctx: RoleContext) -> RoleResult: ...
