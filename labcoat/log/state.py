"""The run state: a pure fold of the experiment log.

    state = fold(events)               # from nothing
    state = reduce(state, event)       # one more event; `state` itself is left untouched
    state = fold(more, state)          # continue a fold

`reduce` does no I/O, reads no clock and never mutates its input: it copies the state's
containers and replaces the records it changes (`SubtaskState`, `Spend`, ... are frozen).
`fold` applies the same step in place to one private copy, so folding N events is O(N).
Treat a `RunState` as a value: read it, never write to it.

What the loop reads: `status`, `config` (with resume overrides merged), `experiment`,
`seed`, `brain`, `base_commit`, `iteration` (latest planned), `metric_name` / `direction`,
`subtasks` (plan order), `unfinished()`, `best`, `baseline`, `closed` /
`iterations_without_improvement`, `cost`, `budget` (the last `budget_exhausted`, cleared by a
resume). Replaying logged model replies reads the `llm_call` events themselves. A person's
notes, approvals and stop requests: `labcoat.log.steering`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from labcoat.experiment.metric import beats
from labcoat.log import claims, steering
from labcoat.log import events as ev
from labcoat.log.claims import ClaimCheck
from labcoat.log.cost import NO_SPEND, Cost, spend_delta
from labcoat.log.steering import Approval, Note, StopRequest

RunStatus = Literal["new", "running", "paused", "finished", "failed"]
SubtaskStatus = Literal["planned", "running", "finished", "failed", "declined"]
"""`declined`: a person did not approve it (`labcoat.log.steering`); it never runs."""


@dataclass(frozen=True, slots=True)
class Grade:
    """One `graded` event: a commit scored with a seed."""

    commit: str
    seed: int
    metric: float | None
    metrics: dict[str, float]
    ok: bool
    error: str | None
    iteration: int = 0
    """The iteration whose step graded it (a critic's re-grades belong to the critic's)."""


@dataclass(frozen=True, slots=True)
class SubtaskState:
    """Everything the log says about one planned subtask."""

    id: str
    role: str
    iteration: int
    subtask: dict[str, Any]
    """The `Subtask` dump from the plan (params, seed, base_commit, target, seeds, ...)."""
    status: SubtaskStatus = "planned"
    attempts: int = 0
    commit: str | None = None
    """The result commit: from `subtask_finished`, or from the own-seed `graded` event."""
    tree: str | None = None
    """The result's git tree, recorded when the role finished (grading commits it)."""
    summary: str = ""
    changed: bool = False
    artifacts: tuple[str, ...] = ()
    error: str | None = None
    grades: dict[int, Grade] = field(default_factory=dict)
    """By seed."""
    verdict: str | None = None
    """The latest critique verdict on this subtask's result (it was the target)."""
    verdicts: tuple[tuple[int, str], ...] = ()
    """Every verdict on this result with the iteration of the critique, oldest first."""
    critique: dict[str, Any] | None = None
    """This subtask's own critique of another (for reviewing roles)."""
    candidate: bool = True
    """False for a measurement: graded and shown, never `best`, never critiqued."""

    @property
    def seed(self) -> int:
        return int(self.subtask.get("seed", 0))

    @property
    def own_grade(self) -> Grade | None:
        """The grade at the subtask's own seed, if any."""
        return self.grades.get(self.seed)

    @property
    def metric(self) -> float | None:
        """Primary metric at its own seed when grading succeeded and gave a number."""
        grade = self.own_grade
        if grade is None or not grade.ok or grade.metric is None or math.isnan(grade.metric):
            return None
        return grade.metric


@dataclass(frozen=True, slots=True)
class Best:
    subtask: str
    commit: str | None
    metric: float


@dataclass(frozen=True, slots=True)
class ClosedIteration:
    iteration: int
    best_subtask: str | None
    best_metric: float | None
    improved: bool


@dataclass(frozen=True, slots=True)
class BudgetHit:
    kind: str
    limit: float
    spent: float


@dataclass(slots=True)
class RunState:
    """The fold of a run's log. Read it; never write to it (see the module docstring)."""

    status: RunStatus = "new"
    run_id: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    experiment: dict[str, Any] = field(default_factory=dict)
    experiment_dir: str = ""
    experiment_hash: str = ""
    grader_hash: str = ""
    labcoat_version: str = ""
    seed: int = 0
    brain: str = ""
    base_commit: str = ""
    started_ts: float | None = None
    last_ts: float | None = None
    last_seq: int = -1
    iteration: int = 0
    """The latest planned iteration (0 before the first plan)."""
    subtasks: dict[str, SubtaskState] = field(default_factory=dict)
    """By id, in plan order."""
    rationales: dict[int, str] = field(default_factory=dict)
    closed: list[ClosedIteration] = field(default_factory=list)
    cost: Cost = field(default_factory=Cost)
    logged_llm_calls: int = 0
    """Model calls really made (not replayed): their replies replay on resume."""
    budget: BudgetHit | None = None
    """The last budget_exhausted, until a resume."""
    resumes: int = 0
    repairs: int = 0
    sandbox_execs: int = 0
    execs_by_subtask: dict[str, int] = field(default_factory=dict)
    stop_reason: str | None = None
    """The reason of run_paused / run_finished, or the error of run_failed."""
    claims: dict[int, ClaimCheck] = field(default_factory=dict)
    """Claim index -> the latest `claim_checked` (`labcoat.log.claims`)."""
    notes: list[Note] = field(default_factory=list)
    approvals: dict[str, Approval] = field(default_factory=dict)
    """By the id of the plan_proposed whose subtasks wait, in log order."""
    stop: StopRequest | None = None
    """A stop request the run has not acted on yet (cleared by a resume)."""
    stops: list[StopRequest] = field(default_factory=list)
    """Every stop request, for the record."""
    requests: dict[str, int] = field(default_factory=dict)
    """Request id -> seq of the event that took it in (each request is taken in once)."""
    waiting_for_person: bool = False
    """The run paused because nobody decided on a plan in time (exit code 4)."""

    @property
    def metric_name(self) -> str | None:
        return (self.experiment.get("metric") or {}).get("name")

    @property
    def direction(self) -> str:
        return str((self.experiment.get("metric") or {}).get("direction", "maximize"))

    @property
    def budget_exhausted(self) -> bool:
        return self.budget is not None

    @property
    def pending_approval(self) -> Approval | None:
        """The plan that waits for a person's decision, if any."""
        return next((a for a in self.approvals.values() if a.pending), None)

    def awaiting(self) -> frozenset[str]:
        """Subtasks that may not start until a person approves them."""
        return frozenset(sid for a in self.approvals.values() if a.pending
                         for sid in a.subtasks)

    def open_notes(self) -> list[Note]:
        """Notes no plan has acted on yet, oldest first."""
        return [n for n in self.notes if n.answer is None]

    def unfinished(self) -> list[SubtaskState]:
        """Planned or started but neither finished nor failed, in plan order."""
        return [s for s in self.subtasks.values() if s.status in ("planned", "running")]

    @property
    def best(self) -> Best | None:
        """Best own-seed metric among finished candidates (not measurements) not judged
        not_reproducible.

        Ties go to the earliest in plan order.
        """
        best: Best | None = None
        for s in self.subtasks.values():
            metric = s.metric
            if (s.status != "finished" or metric is None or s.verdict == "not_reproducible"
                    or not s.candidate):
                continue
            if beats(metric, best.metric if best else None, self.direction):
                best = Best(s.id, s.commit, metric)
        return best

    @property
    def baseline(self) -> float | None:
        """The first reproducer subtask's metric (None until it is graded)."""
        for s in self.subtasks.values():
            if s.role == "reproducer" and s.status != "declined":
                return s.metric
        return None

    @property
    def iterations_without_improvement(self) -> int:
        """Closed iterations since the last one that improved."""
        count = 0
        for closed in reversed(self.closed):
            if closed.improved:
                break
            count += 1
        return count

    def copy(self) -> RunState:
        """A copy whose containers can change without touching this state."""
        return replace(self, config=dict(self.config), subtasks=dict(self.subtasks),
                       rationales=dict(self.rationales), closed=list(self.closed),
                       cost=self.cost.copy(),
                       execs_by_subtask=dict(self.execs_by_subtask), notes=list(self.notes),
                       approvals=dict(self.approvals), stops=list(self.stops),
                       requests=dict(self.requests))

    def as_of(self, iteration: int) -> RunState:
        """The run as it stood for iterations up to `iteration`: later subtasks, and verdicts
        and grades that later iterations' critics added, are left out. Decisions that must not
        depend on timing (plans, reviews, closing an iteration) are made on such a view."""
        subtasks = {sid: _rewound(s, iteration) for sid, s in self.subtasks.items()
                    if s.iteration <= iteration}
        claims = {k: c for k, c in self.claims.items() if c.iteration <= iteration}
        return replace(self.copy(), subtasks=subtasks, iteration=min(self.iteration, iteration),
                       claims=claims,
                       closed=[c for c in self.closed if c.iteration <= iteration])

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for `labcoat status --json`), with the derived values included."""
        data = asdict(self)
        best = self.best
        data.update(
            metric_name=self.metric_name, direction=self.direction, baseline=self.baseline,
            best=None if best is None else asdict(best),
            unfinished=[s.id for s in self.unfinished()],
            iterations_without_improvement=self.iterations_without_improvement,
            replayable_llm_responses=self.logged_llm_calls,
            awaiting_approval=sorted(self.awaiting()), open_notes=len(self.open_notes()),
        )
        data["cost"]["total"]["tokens"] = self.cost.total.tokens
        return data


def _rewound(s: SubtaskState, iteration: int) -> SubtaskState:
    verdicts = tuple(v for v in s.verdicts if v[0] <= iteration)
    if len(verdicts) == len(s.verdicts) and all(g.iteration <= iteration
                                                 for g in s.grades.values()):
        return s
    grades = {seed: g for seed, g in s.grades.items() if g.iteration <= iteration}
    return replace(s, verdicts=verdicts, verdict=verdicts[-1][1] if verdicts else None,
                   grades=grades)


# --- the step: each handler updates a private copy in place ---------------------------------

def _run_started(s: RunState, e: ev.RunStarted) -> None:
    s.status, s.run_id, s.config, s.experiment = "running", e.run_id, dict(e.config), e.experiment
    s.experiment_dir, s.experiment_hash, s.grader_hash = (
        e.experiment_dir, e.experiment_hash, e.grader_hash)
    s.labcoat_version, s.seed, s.brain, s.base_commit = (
        e.labcoat_version, e.seed, e.brain, e.base_commit)
    s.started_ts = e.ts


def _run_resumed(s: RunState, e: ev.RunResumed) -> None:
    s.status, s.budget, s.stop_reason = "running", None, None
    s.stop, s.waiting_for_person = None, False  # resuming supersedes an earlier stop request
    s.config.update(e.overrides)
    s.resumes += 1


def _plan_proposed(s: RunState, e: ev.PlanProposed) -> None:
    s.iteration = max(s.iteration, e.iteration)
    s.rationales[e.iteration] = e.rationale
    for sub in e.subtasks:
        sid = str(sub["id"])
        if sid not in s.subtasks:
            s.subtasks[sid] = SubtaskState(id=sid, role=str(sub.get("role", "")),
                                           iteration=int(sub.get("iteration", e.iteration)),
                                           subtask=sub)
    steering.plan_gate(s, e)


def _update(s: RunState, sid: str | None, **changes: Any) -> None:
    """Replace a known subtask's record; events about unknown subtasks change nothing."""
    old = s.subtasks.get(sid) if sid is not None else None
    if old is not None:
        s.subtasks[old.id] = replace(old, **changes)


def _subtask_started(s: RunState, e: ev.SubtaskStarted) -> None:
    old = s.subtasks.get(e.subtask_id)
    attempts = max(e.attempt, old.attempts if old else 0)
    _update(s, e.subtask_id, status="running", attempts=attempts, error=None)


def _sandbox_exec(s: RunState, e: ev.SandboxExec) -> None:
    s.sandbox_execs += 1
    if e.subtask_id is not None:
        s.execs_by_subtask[e.subtask_id] = s.execs_by_subtask.get(e.subtask_id, 0) + 1


def _llm_call(s: RunState, e: ev.LlmCall) -> None:
    if e.replayed:
        return
    s.logged_llm_calls += 1
    cost, d = s.cost, spend_delta(e)
    s.cost = Cost(cost.total.plus(d), cost.by_role, cost.by_iteration)  # dicts: this state's own
    cost.by_role[e.role] = cost.by_role.get(e.role, NO_SPEND).plus(d)
    cost.by_iteration[e.iteration] = cost.by_iteration.get(e.iteration, NO_SPEND).plus(d)


def _subtask_finished(s: RunState, e: ev.SubtaskFinished) -> None:
    old = s.subtasks.get(e.subtask_id)
    critique = e.critique if e.critique is not None else (old.critique if old else None)
    _update(s, e.subtask_id, status="finished", commit=e.commit, tree=e.tree, summary=e.summary,
            changed=e.changed, artifacts=tuple(e.artifacts), critique=critique, error=None,
            candidate=e.candidate)
    target = (e.critique or {}).get("target")
    if target and e.critique and e.critique.get("verdict") and (
            old is None or old.critique is None):  # a `critique` event already judged it
        _judged(s, str(target), str(e.critique["verdict"]), e.iteration)


def _judged(s: RunState, target: str, verdict: str, iteration: int) -> None:
    old = s.subtasks.get(target)
    if old is not None:
        _update(s, target, verdict=verdict, verdicts=(*old.verdicts, (iteration, verdict)))


def _subtask_failed(s: RunState, e: ev.SubtaskFailed) -> None:
    _update(s, e.subtask_id, status="failed", error=e.error)


def _graded(s: RunState, e: ev.Graded) -> None:
    old = s.subtasks.get(e.subtask_id)
    if old is not None:
        grade = Grade(e.commit, e.seed, e.metric, dict(e.metrics), e.ok, e.error, e.iteration)
        commit = e.commit if e.seed == old.seed else old.commit
        _update(s, e.subtask_id, grades={**old.grades, e.seed: grade}, commit=commit)


def _critique(s: RunState, e: ev.CritiqueEvent) -> None:
    _judged(s, e.target, e.verdict, e.iteration)
    _update(s, e.subtask_id, critique=e.model_dump(include={
        "target", "verdict", "reason", "metrics_by_seed", "mean", "std"}))


def _iteration_closed(s: RunState, e: ev.IterationClosed) -> None:
    s.closed.append(ClosedIteration(e.iteration, e.best_subtask, e.best_metric, e.improved))


def _budget_exhausted(s: RunState, e: ev.BudgetExhaustedEvent) -> None:
    s.budget = BudgetHit(e.kind, e.limit, e.spent)


def _run_paused(s: RunState, e: ev.RunPaused) -> None:
    s.status, s.stop_reason = "paused", e.reason
    s.waiting_for_person = e.waiting_for_person


def _run_finished(s: RunState, e: ev.RunFinished) -> None:
    s.status, s.stop_reason = "finished", e.reason


def _run_failed(s: RunState, e: ev.RunFailed) -> None:
    s.status, s.stop_reason = "failed", e.error


def _log_repaired(s: RunState, e: ev.LogRepaired) -> None:
    s.repairs += 1


def _ignored(s: RunState, e: ev.EventBase) -> None:
    """Events kept for the timeline only (`tool_call`, `llm_error`)."""


_HANDLERS: dict[str, Callable[[RunState, Any], None]] = {
    "run_started": _run_started, "run_resumed": _run_resumed,
    "plan_proposed": _plan_proposed, "subtask_started": _subtask_started,
    "sandbox_exec": _sandbox_exec, "llm_call": _llm_call,
    "subtask_finished": _subtask_finished, "subtask_failed": _subtask_failed,
    "graded": _graded, "critique": _critique, "iteration_closed": _iteration_closed,
    "budget_exhausted": _budget_exhausted, "run_paused": _run_paused,
    "run_finished": _run_finished, "run_failed": _run_failed, "log_repaired": _log_repaired,
    "tool_call": _ignored, "llm_error": _ignored, "capacity": _ignored,
    "snapshot_ignored": _ignored,
    "sandbox_leased": _ignored, "node_lost": _ignored, **steering.HANDLERS, **claims.HANDLERS,
}


def _step(s: RunState, e: ev.EventBase) -> None:
    _HANDLERS[e.type](s, e)
    s.last_seq, s.last_ts = e.seq, e.ts
    if not s.run_id:
        s.run_id = e.run_id


def reduce(state: RunState, event: ev.EventBase) -> RunState:
    """The state after one more event. Pure: `state` is not modified."""
    new = state.copy()
    _step(new, event)
    return new


def fold(events: Iterable[ev.EventBase], state: RunState | None = None) -> RunState:
    """Reduce events in order, from `state` (default: a new run). Same result as reduce."""
    new = RunState() if state is None else state.copy()
    for event in events:
        _step(new, event)
    return new
