"""The scheduler: a continuous pipeline of subtasks, with no iteration barrier.

Each subtask runs its own small graph (work, then grade: `graph.subtask_graph`) as soon as a
slot is free, at most `parallel` at once; grading starts the moment its work ends. Between
pipelines finishing, the scheduler makes the decisions `schedule` allows, all of them pure
functions of the log:

* plan iteration n when iteration n - depth has closed (from the run as it stood then), and
  only when the queue of planned subtasks runs low;
* review the oldest open iteration once its work is graded (critic subtasks join the queue),
  and close it when its review asks for nothing more;
* finish when nothing more will be planned and every iteration has closed; pause when the
  time limit strikes (work in flight ends first, nothing new starts).

So the same subtasks, commits and best result come out whatever the timing, and a killed run
resumes by folding its log and asking the same questions again.
"""

from __future__ import annotations

import asyncio
import contextlib

from labcoat.orchestrator import planning
from labcoat.orchestrator.graph import SubtaskGraph, subtask_graph
from labcoat.orchestrator.lab import Lab
from labcoat.orchestrator.schedule import (
    all_closed,
    next_to_plan,
    open_iteration,
    ready,
    reviewable,
    stop_reason,
)

DEFAULT_DEPTH = 2
"""Iterations in flight: 1 is the iteration barrier; 2 plans iteration n from n - 2."""


class Scheduler:
    """Drives one Lab until the run finishes or pauses (exceptions propagate: the run pauses)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.depth = max(1, int(lab.config.get("pipeline_depth") or DEFAULT_DEPTH))
        self.parallel = max(1, int(lab.config.get("parallel", 1)))
        self.running: dict[str, asyncio.Task[object]] = {}
        self.exhausted = False
        """The manager proposed nothing for the next iteration: plan no more."""
        self.graph: SubtaskGraph = subtask_graph(lab)

    async def run(self) -> None:
        try:
            while await self._decide():
                self._admit()
                if self.running:
                    await self._wait_one()
        finally:
            await self._cancel_all()

    # -- decisions -------------------------------------------------------------------------

    async def _decide(self) -> bool:
        """Make every decision the log allows now; False once the run has ended."""
        while self.lab.state.status == "running":
            before = self.lab.state.last_seq
            if self.lab.time_up():
                return self._wind_down()
            await self._review_and_close()
            await self._plan_ahead()
            if self._finished():
                planning.finish(self.lab, self._finish_reason())
            if self.lab.state.last_seq == before:
                return self.lab.state.status == "running"
        return False

    async def _plan_ahead(self) -> None:
        while not self.exhausted and self._queue_low():
            n = next_to_plan(self.lab.state, self.depth)
            if n is None:
                return
            proposed = await planning.plan_iteration(self.lab, n, self.depth)
            self.exhausted = not proposed.subtasks

    def _queue_low(self) -> bool:
        waiting = [s for s in ready(self.lab.state) if s.id not in self.running]
        return len(waiting) < self.parallel

    async def _review_and_close(self) -> None:
        n = open_iteration(self.lab.state)
        while n is not None and reviewable(self.lab.state, n):
            proposed = await planning.review(self.lab, n)
            if proposed.subtasks:
                return  # the critics run first; the iteration closes after them
            planning.close(self.lab, n)
            n = open_iteration(self.lab.state)

    def _no_more(self) -> bool:
        """No further iteration will be planned."""
        return self.exhausted or stop_reason(self.lab.state, depth=self.depth) is not None

    def _idle(self) -> bool:
        """Nothing in flight, nothing left to work or grade, every iteration closed."""
        state = self.lab.state
        return not self.running and not ready(state) and all_closed(state)

    def _finished(self) -> bool:
        return self._no_more() and self._idle()

    def _finish_reason(self) -> str:
        reason = stop_reason(self.lab.state, depth=self.depth)
        return reason or "the manager has nothing left to try"

    def _wind_down(self) -> bool:
        """The time limit struck: start nothing new; once the work in flight has ended, finish
        when nothing is left half done, else pause so that a resume does it."""
        if self.running:
            return True
        if self._finished():
            planning.finish(self.lab, self._finish_reason())
        elif self._idle():
            planning.finish(self.lab, stop_reason(self.lab.state, depth=self.depth,
                                                  time_up=True))
        else:
            planning.pause_for_time(self.lab)
        return False

    # -- pipelines -------------------------------------------------------------------------

    def _admit(self) -> None:
        """Start a pipeline for each ready subtask while slots are free."""
        if self.lab.time_up():
            return
        for rec in ready(self.lab.state):
            if len(self.running) >= self.parallel:
                return
            if rec.id not in self.running:
                job = self.graph.ainvoke({"sid": rec.id})
                self.running[rec.id] = asyncio.ensure_future(job)

    async def _wait_one(self) -> None:
        finished, _ = await asyncio.wait(self.running.values(),
                                         return_when=asyncio.FIRST_COMPLETED)
        for sid, task in list(self.running.items()):
            if task in finished:
                del self.running[sid]
                task.result()  # an infrastructure error or a spent budget pauses the run

    async def _cancel_all(self) -> None:
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)
        self.running.clear()
