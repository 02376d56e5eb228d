"""Events about the run as a whole: start, resume, plans, iterations, budgets, pauses, the end."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from labcoat.log.event_base import EventBase


class RunStarted(EventBase):
    type: Literal["run_started"] = "run_started"
    config: dict[str, Any]
    """Resolved run options (budgets, parallel, patience, ...)."""
    experiment: dict[str, Any]
    """The validated experiment spec, dumped."""
    experiment_dir: str
    experiment_hash: str
    grader_hash: str
    labcoat_version: str
    seed: int
    brain: str
    """"search" or a model spec such as "anthropic:MODEL"."""
    base_commit: str
    """The workspace's initial commit."""


class RunResumed(EventBase):
    type: Literal["run_resumed"] = "run_resumed"
    overrides: dict[str, Any] = Field(default_factory=dict)
    """Config keys raised on resume; the fold merges them into `RunState.config`."""
    pid: int


class PlanProposed(EventBase):
    type: Literal["plan_proposed"] = "plan_proposed"
    subtasks: list[dict[str, Any]]
    """`Subtask` dumps in plan order."""
    rationale: str = ""


class IterationClosed(EventBase):
    type: Literal["iteration_closed"] = "iteration_closed"
    best_subtask: str | None = None
    best_metric: float | None = None
    improved: bool = False


class BudgetExhaustedEvent(EventBase):
    type: Literal["budget_exhausted"] = "budget_exhausted"
    kind: Literal["usd", "tokens", "time", "iterations"]
    limit: float
    spent: float


class RunPaused(EventBase):
    type: Literal["run_paused"] = "run_paused"
    reason: str


class RunFinished(EventBase):
    type: Literal["run_finished"] = "run_finished"
    reason: str
    best_subtask: str | None = None
    best_commit: str | None = None
    best_metric: float | None = None


class RunFailed(EventBase):
    type: Literal["run_failed"] = "run_failed"
    error: str


class LogRepaired(EventBase):
    type: Literal["log_repaired"] = "log_repaired"
    broken_copy: str
    """Path of the copy of the file as found, torn tail included."""
    dropped_bytes: int
    reason: str
