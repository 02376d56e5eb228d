"""Where a run stands, from its log alone: the pure function the loop's graph routes by.

    route = next_step(state, time_up=False)    # Route("work", ("it002-01", "it002-02"))

A killed run resumes by folding its log and asking the same question again, so every answer
here depends on the run state (and on whether the time limit has struck) and on nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from labcoat.log import RunState, SubtaskState

Step = Literal["plan", "work", "grade", "review", "finish", "pause", "end"]


@dataclass(frozen=True)
class Route:
    """The next step, and for `work` / `grade` the subtasks it applies to (plan order)."""

    step: Step
    subtasks: tuple[str, ...] = ()


def needs_grading(rec: SubtaskState) -> bool:
    """A finished subtask whose result has not been graded at its own seed yet."""
    return rec.status == "finished" and rec.tree is not None and rec.seed not in rec.grades


def stop_reason(state: RunState, *, time_up: bool) -> str | None:
    """Why the run should stop after this iteration, or None to plan another one."""
    cfg = state.config
    if state.iteration >= int(cfg.get("max_iterations", 1)):
        return f"reached max iterations ({state.iteration})"
    if time_up:
        return f"reached the time limit ({cfg.get('time_limit_s')} s)"
    patience = int(cfg.get("patience", 0) or 0)
    if patience and state.iterations_without_improvement >= patience:
        return f"no improvement for {patience} iteration(s)"
    return None


def next_step(state: RunState, *, time_up: bool) -> Route:
    """The step that comes next for a run in `state`.

    Planned work of the current iteration runs first (unless the time limit struck: then the
    run pauses, so that a resume does that work); then its results are graded; then reviewed.
    A closed iteration (or none yet) plans the next one, or finishes when a stop reason holds.
    """
    if state.status in ("finished", "failed", "paused"):
        return Route("end")
    current = [s for s in state.subtasks.values() if s.iteration == state.iteration]
    pending = tuple(s.id for s in current if s.status in ("planned", "running"))
    if pending:
        return Route("pause") if time_up else Route("work", pending)
    ungraded = tuple(s.id for s in current if needs_grading(s))
    if ungraded:
        return Route("grade", ungraded)
    if state.iteration == 0 or any(c.iteration == state.iteration for c in state.closed):
        return Route("finish") if stop_reason(state, time_up=time_up) else Route("plan")
    return Route("review")
