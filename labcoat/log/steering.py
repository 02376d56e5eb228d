"""A person in the loop, as the fold sees it: notes, approvals and stop requests.

    state.notes               every note, in log order; `open_notes()`: not yet acted on
    state.approvals           plan_proposed id -> Approval (pending, approved or rejected)
    state.pending_approval    the plan that waits for a person, or None
    state.awaiting()          ids of the subtasks that may not start yet
    state.stop                the stop request the run has not acted on (a resume clears it)
    state.requests            ids of the requests taken into the log (each is taken once)

The handlers below are part of the pure fold in `labcoat.log.state` (no I/O, no clock). A
declined subtask (rejected, or left out by `approve --only`) keeps its place in the plan with
status "declined": it never runs, and it counts as done, so its iteration can close. When a
person rejects every subtask of the latest iteration, that iteration is planned again: the
rejected plan does not count as one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from labcoat.log import events as ev


@dataclass(frozen=True, slots=True)
class Note:
    """One `note_added`, numbered from 1 in log order."""

    number: int
    text: str
    seq: int
    ts: float
    iteration: int
    """The run's latest planned iteration when the note arrived."""
    answer: str | None = None
    """How a plan took it into account (None: not acted on yet)."""
    answered_in: int | None = None
    """The iteration of that plan."""


@dataclass(frozen=True, slots=True)
class Approval:
    """A plan (some of whose subtasks) waits for a person, and what the person decided."""

    plan: str
    """Id of the `plan_proposed` event."""
    iteration: int
    subtasks: tuple[str, ...]
    """The subtasks that wait (all of the plan's with `--approve plans`)."""
    gate: str
    """"plans" or "spend"."""
    seq: int
    ts: float
    worst_usd: dict[str, float]
    asked: dict[str, str]
    """What each waiting subtask was to do (`role: instructions`), as the plan said."""
    decision: str | None = None
    """None while pending; "approved" or "rejected"."""
    approved: tuple[str, ...] = ()
    reason: str = ""
    source: str = ""
    decided_ts: float | None = None

    @property
    def pending(self) -> bool:
        return self.decision is None

    @property
    def declined(self) -> tuple[str, ...]:
        """Waiting subtasks the decision did not let start (none while pending)."""
        if self.pending:
            return ()
        return tuple(s for s in self.subtasks if s not in self.approved)


@dataclass(frozen=True, slots=True)
class StopRequest:
    """One `stop_requested`."""

    now: bool
    seq: int
    ts: float
    iteration: int


class Steered(Protocol):
    """The part of `RunState` the handlers write (the state imports this module)."""

    notes: list[Note]
    approvals: dict[str, Approval]
    stop: StopRequest | None
    stops: list[StopRequest]
    requests: dict[str, int]
    subtasks: dict[str, Any]
    """`SubtaskState`s, by id."""
    iteration: int
    rationales: dict[int, str]


def plan_gate(s: Steered, e: ev.PlanProposed) -> None:
    """The approval side of `plan_proposed`: what waits, and which notes it answered."""
    if e.awaiting:
        asked = {str(x.get("id")): f"{x.get('role', '?')}: {x.get('instructions', '')}"
                 for x in e.subtasks if x.get("id") in e.awaiting}
        s.approvals[e.id] = Approval(plan=e.id, iteration=e.iteration, gate=e.gate or "plans",
                                     subtasks=tuple(e.awaiting), seq=e.seq, ts=e.ts,
                                     worst_usd=dict(e.worst_usd), asked=asked)
    for number, answer in e.notes.items():
        k = int(number) - 1
        if 0 <= k < len(s.notes) and s.notes[k].answer is None:
            s.notes[k] = replace(s.notes[k], answer=answer, answered_in=e.iteration)


def note_added(s: Steered, e: ev.NoteAdded) -> None:
    s.notes.append(Note(len(s.notes) + 1, e.text, e.seq, e.ts, s.iteration))
    s.requests[e.request] = e.seq


def approval_decided(s: Steered, e: ev.ApprovalDecided) -> None:
    s.requests[e.request] = e.seq
    old = s.approvals.get(e.plan)
    if old is None or not old.pending:
        return
    approved = tuple(x for x in old.subtasks if e.decision == "approved" and x in e.approved)
    decided = replace(old, decision=e.decision, approved=approved, reason=e.reason,
                      source=e.source, decided_ts=e.ts)
    s.approvals[e.plan] = decided
    why = (f"rejected by a person: {e.reason}" if e.decision == "rejected"
           else "not approved (approve --only named others)")
    for sid in decided.declined:
        rec = s.subtasks.get(sid)
        if rec is not None and rec.status == "planned":
            s.subtasks[sid] = replace(rec, status="declined", error=why)
    _unplan_if_empty(s, old.iteration)


def _unplan_if_empty(s: Steered, iteration: int) -> None:
    """A latest iteration whose every subtask was declined was never really planned."""
    if iteration != s.iteration:
        return
    if all(x.status == "declined" for x in s.subtasks.values() if x.iteration == iteration):
        s.iteration = iteration - 1
        s.rationales.pop(iteration, None)


def stop_requested(s: Steered, e: ev.StopRequested) -> None:
    s.requests[e.request] = e.seq
    now = e.now or (s.stop is not None and s.stop.now)
    s.stop = StopRequest(now, e.seq, e.ts, e.iteration)
    s.stops.append(StopRequest(e.now, e.seq, e.ts, e.iteration))


def subtask_cancelled(s: Steered, e: ev.SubtaskCancelled) -> None:
    """Cancelled work is planned again (a cancelled grading stays finished, ungraded)."""
    rec = s.subtasks.get(e.subtask_id)
    if rec is not None and rec.status == "running":
        s.subtasks[e.subtask_id] = replace(rec, status="planned")


HANDLERS: dict[str, Callable[[Steered, Any], None]] = {
    "note_added": note_added, "approval_decided": approval_decided,
    "stop_requested": stop_requested, "subtask_cancelled": subtask_cancelled,
}
"""The fold's handlers for the steering events (`plan_gate` runs inside `plan_proposed`'s)."""
