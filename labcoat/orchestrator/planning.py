"""The loop's planning steps: plan an iteration, plan its review, decide, finish or pause.

The manager (either brain) proposes; these steps record what it proposed and when an iteration
closes. Whether the run goes on is `routing.stop_reason`, a function of the log alone.
"""

from __future__ import annotations

import time

from labcoat.agents.manager import Plan
from labcoat.experiment import beats
from labcoat.orchestrator.lab import Lab
from labcoat.orchestrator.routing import stop_reason


async def plan(lab: Lab) -> Plan:
    """Ask the manager for the next iteration's subtasks; finish when it has none."""
    iteration = lab.state.iteration + 1
    proposed = await lab.manager.plan(lab.state, iteration)
    if proposed.subtasks:
        _record(lab, proposed, iteration)
    else:
        finish(lab, "the manager has nothing left to try")
    return proposed


async def review(lab: Lab) -> Plan:
    """Ask the manager for critic subtasks on this iteration's unreviewed leaders."""
    iteration = lab.state.iteration
    proposed = await lab.manager.review(lab.state, iteration)
    if proposed.subtasks:
        _record(lab, proposed, iteration)
    return proposed


def _record(lab: Lab, proposed: Plan, iteration: int) -> None:
    lab.emit("plan_proposed", iteration=iteration, rationale=proposed.rationale,
             subtasks=[s.model_dump(mode="json") for s in proposed.subtasks])


def decide(lab: Lab) -> None:
    """Close the iteration, saying whether its best beats the previous iteration's."""
    st = lab.state
    best = st.best
    previous = st.closed[-1].best_metric if st.closed else None
    improved = best is not None and beats(best.metric, previous, st.direction)
    lab.emit("iteration_closed", best_subtask=best.subtask if best else None,
             best_metric=best.metric if best else None, improved=improved)


def finish(lab: Lab, reason: str | None = None) -> None:
    """End the run (`run_finished`) with its best result."""
    best = lab.state.best
    why = reason or stop_reason(lab.state, time_up=lab.time_up()) or "stopped"
    lab.emit("run_finished", reason=why, best_subtask=best.subtask if best else None,
             best_commit=best.commit if best else None,
             best_metric=best.metric if best else None)


def pause_for_time(lab: Lab) -> None:
    """The time limit struck with work still planned: pause (resumable), never drop it."""
    limit = float(lab.config.get("time_limit_s") or 0)
    spent = time.monotonic() - lab.started
    lab.emit("budget_exhausted", kind="time", limit=limit, spent=spent)
    lab.emit("run_paused", reason=f"time limit of {limit:g} s reached mid-iteration; "
             f"`labcoat resume {lab.run_dir}` continues (with a new time window)")
