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
    awaiting: list[str] = Field(default_factory=list)
    """Subtasks that wait for a person's approval before they start (`--approve`)."""
    gate: Literal["plans", "spend"] | None = None
    """Why they wait: every plan waits (`plans`), or their worst-case spend (`spend`)."""
    worst_usd: dict[str, float] = Field(default_factory=dict)
    """Worst-case model spend of each priced subtask: its token limits times its prices."""
    notes: dict[str, str] = Field(default_factory=dict)
    """Note number -> how this plan took the person's note into account."""


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
    waiting_for_person: bool = False
    """Paused because nobody decided on a plan in time (`--approve-timeout`; exit code 4)."""


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


class SnapshotIgnored(EventBase):
    """A snapshot of the fold that did not pass its checks at open: the run replayed the log
    instead (`labcoat.log.snapshot`), and the snapshot was deleted."""

    type: Literal["snapshot_ignored"] = "snapshot_ignored"
    snapshot: str
    """Its file name in `<run_dir>/snapshots/`."""
    snapshot_seq: int
    """The last log line it claimed to fold."""
    reason: str


# --- a person in the loop (optional v1 additions; see `labcoat.log.events`) -----------------

class NoteAdded(EventBase):
    """A person's note to the run (`labcoat note`)."""

    type: Literal["note_added"] = "note_added"
    text: str
    request: str
    """Id of the request that carried it: a request is taken into the log once, whatever
    crashes in between (`labcoat.orchestrator.inbox`)."""


class ApprovalDecided(EventBase):
    """A person's decision on a plan that waits for approval (`labcoat approve` / `reject`)."""

    type: Literal["approval_decided"] = "approval_decided"
    plan: str
    """Id of the `plan_proposed` event decided on."""
    decision: Literal["approved", "rejected"]
    approved: list[str] = Field(default_factory=list)
    """Waiting subtasks that may start; the plan's other waiting subtasks are declined."""
    reason: str = ""
    """Why it was rejected (the LLM manager reads it when it plans again)."""
    request: str
    source: Literal["command", "terminal"] = "command"
    """`labcoat approve`/`reject`, or an answer typed at the live run's terminal."""


class StopRequested(EventBase):
    """`labcoat stop`: start nothing new, then pause (`now`: cancel the running subtasks)."""

    type: Literal["stop_requested"] = "stop_requested"
    now: bool = False
    request: str


class SubtaskCancelled(EventBase):
    """A running subtask cancelled by `labcoat stop --now`: its sandbox is gone and it runs
    again from its base commit at resume."""

    type: Literal["subtask_cancelled"] = "subtask_cancelled"
    subtask_id: str
    reason: str
