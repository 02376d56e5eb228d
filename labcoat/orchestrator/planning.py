"""The loop's planning steps: plan an iteration, plan its review, close it, finish or pause.

The manager (either brain) proposes; these steps record what it proposed and when an iteration
closes. What they see is the run as it stood for the iterations they concern (`as_of`), so the
same log always gives the same plan, however the work in flight happens to be timed.
"""

from __future__ import annotations

import time

from labcoat.agents.manager import Plan
from labcoat.experiment import beats
from labcoat.orchestrator.lab import Lab
from labcoat.orchestrator.schedule import planning_view


async def plan_iteration(lab: Lab, iteration: int, depth: int) -> Plan:
    """Ask the manager for iteration `iteration`'s subtasks, from the run as it stood when
    iteration `iteration - depth` closed; record them (an empty plan records nothing)."""
    proposed = await lab.manager.plan(planning_view(lab.state, iteration, depth), iteration)
    if proposed.subtasks:
        _record(lab, proposed, iteration)
    return proposed


async def review(lab: Lab, iteration: int) -> Plan:
    """Ask the manager for critic subtasks on the leaders as iteration `iteration` stands."""
    proposed = await lab.manager.review(lab.state.as_of(iteration), iteration)
    if proposed.subtasks:
        _record(lab, proposed, iteration)
    return proposed


def _record(lab: Lab, proposed: Plan, iteration: int) -> None:
    lab.emit("plan_proposed", iteration=iteration, rationale=proposed.rationale,
             subtasks=[s.model_dump(mode="json") for s in proposed.subtasks])


def close(lab: Lab, iteration: int) -> None:
    """Close an iteration, saying whether the best as it stands beats the previous close's."""
    view = lab.state.as_of(iteration)
    best = view.best
    previous = view.closed[-1].best_metric if view.closed else None
    improved = best is not None and beats(best.metric, previous, view.direction)
    lab.emit("iteration_closed", iteration=iteration,
             best_subtask=best.subtask if best else None,
             best_metric=best.metric if best else None, improved=improved)


def finish(lab: Lab, reason: str | None) -> None:
    """End the run (`run_finished`) with its best result."""
    best = lab.state.best
    lab.emit("run_finished", reason=reason or "stopped",
             best_subtask=best.subtask if best else None,
             best_commit=best.commit if best else None,
             best_metric=best.metric if best else None)


def pause_for_time(lab: Lab) -> None:
    """The time limit struck with work still planned: pause (resumable), never drop it."""
    limit = float(lab.config.get("time_limit_s") or 0)
    spent = time.monotonic() - lab.started
    lab.emit("budget_exhausted", kind="time", limit=limit, spent=spent)
    lab.emit("run_paused", reason=f"time limit of {limit:g} s reached mid-iteration; "
             f"`labcoat resume {lab.run_dir}` continues (with a new time window)")
