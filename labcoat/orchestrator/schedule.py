"""What the scheduler may do next, from the log alone: pure functions of the run state.

The pipeline keeps `depth` iterations in flight: iteration n is planned once iteration n - depth
has closed, from the run *as it stood* then (`RunState.as_of`), so what gets planned never
depends on which subtask happened to finish first. Iterations are reviewed and closed in order.
With depth 1 this is the iteration barrier: nothing of iteration n starts before n - 1 closed.

    next_to_plan(state, depth)   the iteration to plan now, or None
    open_iteration(state)        the oldest planned iteration not closed yet (reviewed next)
    reviewable(state, n)         iteration n's work is done and graded, n - 1 has closed
    ready(state)                 subtasks a free slot may take, oldest iteration first
    startable(state)             ready, unless a person asked the run to stop
    stop_reason(state, ...)      why no further iteration will be planned, or None
    blocked(state)               the plan that waits for a person, when nothing else can run

A person in the loop (`labcoat.log.steering`): subtasks that wait for approval are not ready;
while a plan waits, nothing new is planned or reviewed (one decision at a time); a declined
subtask is done without running.

The baseline comes first (`labcoat.orchestrator.baseline`): while a reproducer that may fix the
baseline is at work, nothing else is ready and nothing more is planned.
"""

from __future__ import annotations

from labcoat.log import RunState, SubtaskState
from labcoat.log.steering import Approval
from labcoat.orchestrator import baseline


def closed(state: RunState, n: int) -> bool:
    """Iteration n has closed (iteration 0, before the first plan, always has)."""
    return n <= 0 or any(c.iteration == n for c in state.closed)


def needs_grading(rec: SubtaskState) -> bool:
    """A finished subtask whose result has not been graded at its own seed yet."""
    return rec.status == "finished" and rec.tree is not None and rec.seed not in rec.grades


def done(rec: SubtaskState) -> bool:
    """Worked and graded (or failed, or declined): nothing more to do for this subtask."""
    return rec.status in ("failed", "declined") or (rec.status == "finished"
                                                    and not needs_grading(rec))


def planning_view(state: RunState, n: int, depth: int) -> RunState:
    """What iteration n is planned from: the run as iteration n - depth closed (and the
    settled reproducer, when it may have fixed the baseline)."""
    return baseline.with_baseline(state.as_of(max(0, n - depth)), state)


def stop_reason(state: RunState, *, depth: int, time_up: bool = False) -> str | None:
    """Why the next iteration will not be planned (max iterations, patience, time), or None.

    Patience counts the iterations without improvement that the next plan would be made
    from, so the answer is the same however the in-flight work is timed."""
    cfg = state.config
    planned = state.iteration
    if planned >= int(cfg.get("max_iterations", 1)):
        return f"reached max iterations ({planned})"
    if time_up:
        return f"reached the time limit ({cfg.get('time_limit_s')} s)"
    patience = int(cfg.get("patience", 0) or 0)
    seen = planning_view(state, planned + 1, depth)
    if patience and seen.iterations_without_improvement >= patience:
        return f"no improvement for {patience} iteration(s)"
    return None


def next_to_plan(state: RunState, depth: int) -> int | None:
    """The iteration to plan now: the next one, once iteration n - depth has closed."""
    n = state.iteration + 1
    if stop_reason(state, depth=depth) is not None or not closed(state, n - depth):
        return None
    if baseline.fixing(state):
        return None
    return None if state.pending_approval is not None else n


def open_iteration(state: RunState) -> int | None:
    """The oldest planned iteration that has not closed (None when all have)."""
    for n in range(1, state.iteration + 1):
        if not closed(state, n):
            return n
    return None


def reviewable(state: RunState, n: int) -> bool:
    """Iteration n may be reviewed (or closed): the one before it closed, and every subtask
    of n is worked and graded."""
    subtasks = [s for s in state.subtasks.values() if s.iteration == n]
    return closed(state, n - 1) and all(done(s) for s in subtasks)


def ready(state: RunState) -> list[SubtaskState]:
    """Subtasks with work left (planned, interrupted, or finished but not graded), oldest
    iteration first and in plan order within one."""
    order = {sid: i for i, sid in enumerate(state.subtasks)}
    waiting = state.awaiting()
    hold = baseline.fixing(state)
    left = [s for s in state.subtasks.values() if not done(s) and s.id not in waiting
            and not (hold and baseline.held(state, s))]
    return sorted(left, key=lambda s: (s.iteration, order[s.id]))


def startable(state: RunState) -> list[SubtaskState]:
    """What a free slot may start now: the ready subtasks, or none once a person asked the run
    to stop (the work in flight ends; a resume clears the request)."""
    return [] if state.stop is not None else ready(state)


def all_closed(state: RunState) -> bool:
    """Every planned iteration has closed."""
    return open_iteration(state) is None


def blocked(state: RunState) -> Approval | None:
    """The plan that waits for a person when nothing else is left to start (the run can only
    wait), else None."""
    waiting = state.pending_approval
    return waiting if waiting is not None and not ready(state) else None
