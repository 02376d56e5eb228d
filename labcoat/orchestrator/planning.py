"""The loop's planning steps: plan an iteration, plan its review, close it, finish or pause.

The manager (either brain) proposes; these steps record what it proposed and when an iteration
closes. What they see is the run as it stood for the iterations they concern (`as_of`), so the
same log always gives the same plan, however the work in flight happens to be timed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from labcoat.agents.manager import Plan
from labcoat.agents.role import Subtask
from labcoat.experiment import beats
from labcoat.log import RunState
from labcoat.log.steering import Approval
from labcoat.orchestrator.gate import held
from labcoat.orchestrator.lab import Lab
from labcoat.orchestrator.schedule import planning_view

STOPPED = "stopped by request"
"""The reason of the pause that `labcoat stop` asks for."""


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
    """`plan_proposed`, with fresh ids (a plan made again after a rejection must not reuse the
    rejected one's), which of its subtasks wait for a person, and the notes it answered."""
    subtasks = fresh_ids(lab.state, proposed.subtasks)
    gate = held(subtasks, lab.config, lab.models)
    if proposed.notes:
        gate["notes"] = {str(k): v for k, v in proposed.notes.items()}
    lab.emit("plan_proposed", iteration=iteration, rationale=proposed.rationale,
             subtasks=[s.model_dump(mode="json") for s in subtasks], **gate)


def fresh_ids(state: RunState, subtasks: Sequence[Subtask]) -> list[Subtask]:
    """`subtasks` with ids the run has not used yet (`it002-01` taken: `it002-02`, ...)."""
    taken = set(state.subtasks)
    out = []
    for sub in subtasks:
        sid = sub.id
        while sid in taken:
            sid = _next_id(sid)
        taken.add(sid)
        out.append(sub if sid == sub.id else sub.model_copy(update={"id": sid}))
    return out


def _next_id(sid: str) -> str:
    match = re.fullmatch(r"(.*?)(\d+)", sid)
    if match is None:
        return f"{sid}-2"
    head, digits = match.groups()
    return f"{head}{int(digits) + 1:0{len(digits)}d}"


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


def pause_for_stop(lab: Lab) -> None:
    """`labcoat stop`: nothing runs any more; pause (resumable, exit code 3)."""
    lab.emit("run_paused", reason=STOPPED)


def pause_for_person(lab: Lab, waiting: Approval) -> None:
    """Nobody decided on a plan within `--approve-timeout`: pause (exit code 4)."""
    run = lab.run_dir
    lab.emit("run_paused", waiting_for_person=True, reason=(
        f"waiting for a person: {len(waiting.subtasks)} subtask(s) of iteration "
        f"{waiting.iteration} await approval ({', '.join(waiting.subtasks)}); decide with "
        f"`labcoat approve {run}` [--only IDS] or `labcoat reject {run} --reason TEXT`, then "
        f"`labcoat resume {run}`"))
