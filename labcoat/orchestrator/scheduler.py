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

A person steers it through the log (`labcoat.orchestrator.person`): their requests are taken in
whenever the scheduler decides, and every `POLL_S` while it waits. A subtask that waits for
approval does not start; when nothing else can run, the scheduler waits for the decision (and
pauses, exit code 4, after `approve_timeout_s` of waiting). A stop request starts nothing new;
the work in flight ends and is graded (`now`: it is cancelled, its sandboxes removed), then the
run pauses, resumable.

So the same subtasks, commits and best result come out whatever the timing, and a killed run
resumes by folding its log and asking the same questions again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from labcoat.orchestrator import baseline, planning
from labcoat.orchestrator.graph import SubtaskGraph, subtask_graph
from labcoat.orchestrator.lab import Lab
from labcoat.orchestrator.person import Person
from labcoat.orchestrator.schedule import (
    all_closed,
    blocked,
    done,
    next_to_plan,
    open_iteration,
    ready,
    reviewable,
    startable,
    stop_reason,
)

DEFAULT_DEPTH = 2
"""Iterations in flight: 1 is the iteration barrier; 2 plans iteration n from n - 2."""
POLL_S = 0.2
"""How often a waiting scheduler looks into the run's inbox."""


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
        self.person = Person(lab)
        self.blocked_since: tuple[str, float] | None = None
        """(plan id, monotonic time) since which the run can only wait for that plan."""

    async def run(self) -> None:
        try:
            while await self._decide():
                self._admit()
                await self._wait()
        finally:
            self.person.close()
            await self._cancel_all()

    # -- decisions -------------------------------------------------------------------------

    async def _decide(self) -> bool:
        """Make every decision the log allows now; False once the run has ended."""
        while self.lab.state.status == "running":
            before = self.lab.state.last_seq
            self.person.take_in()
            if self.lab.state.stop is not None:
                return await self._stop()
            if self.lab.time_up():
                return self._wind_down()
            if self._waited_too_long():
                return self._pause_for_person()
            self._withdraw_superseded()
            await self._review_and_close()
            await self._plan_ahead()
            if self._finished():
                planning.finish(self.lab, self._finish_reason())
            if self.lab.state.last_seq == before:
                self.person.announce(self.lab.state.pending_approval)
                return self.lab.state.status == "running"
        return False

    def _withdraw_superseded(self) -> None:
        """Work planned on the initial commit never starts once a reproduction fix exists."""
        for rec in baseline.superseded(self.lab.state):
            self.lab.emit("subtask_failed", iteration=rec.iteration, subtask_id=rec.id,
                          role=rec.role, attempt=1, error=baseline.withdrawn_reason(self.lab.state))

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
            if self.lab.state.pending_approval is not None:
                return  # one decision at a time: the review is proposed after it
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
        for rec in startable(self.lab.state):
            if len(self.running) >= self.parallel:
                return
            if rec.id not in self.running:
                job = self.graph.ainvoke({"sid": rec.id})
                self.running[rec.id] = asyncio.ensure_future(job)

    async def _wait(self) -> None:
        """Until a pipeline ends, a person's request or answer arrives, or the approval timeout
        strikes; the inbox is looked into every `POLL_S`."""
        while True:
            if self.running:
                finished, _ = await asyncio.wait(self.running.values(), timeout=POLL_S,
                                                 return_when=asyncio.FIRST_COMPLETED)
                if finished:
                    self._reap(finished)
                    return
            else:
                await self.person.wait(POLL_S)
            if self.person.arrived() or self._waited_too_long() or not self._waiting():
                return

    def _waiting(self) -> bool:
        """Something runs, or a person is waited for (else there is nothing to wait for)."""
        return bool(self.running) or blocked(self.lab.state) is not None

    def _reap(self, finished: set[asyncio.Task[object]]) -> None:
        for sid, task in list(self.running.items()):
            if task in finished:
                del self.running[sid]
                task.result()  # an infrastructure error or a spent budget pauses the run

    # -- a person in the loop --------------------------------------------------------------

    def _waited_too_long(self) -> bool:
        """The run has waited for nothing but a person's decision for `approve_timeout_s`."""
        waiting = None if self.running else blocked(self.lab.state)
        if waiting is None:
            self.blocked_since = None
            return False
        if self.blocked_since is None or self.blocked_since[0] != waiting.plan:
            self.blocked_since = (waiting.plan, time.monotonic())
        limit = self.lab.config.get("approve_timeout_s")
        return limit is not None and time.monotonic() - self.blocked_since[1] >= float(limit)

    def _pause_for_person(self) -> bool:
        waiting = self.lab.state.pending_approval
        assert waiting is not None, "only when blocked on a plan"
        planning.pause_for_person(self.lab, waiting)
        return False

    async def _stop(self) -> bool:
        """A person asked the run to stop: nothing new starts; with `now` the running subtasks
        are cancelled (their sandboxes removed; they run again at resume); once nothing runs,
        the run pauses."""
        stop = self.lab.state.stop
        if stop is not None and stop.now and self.running:
            cancelled = list(self.running)
            await self._cancel_all()
            for sid in cancelled:
                self._cancelled(sid)
        if self.running:
            return True
        planning.pause_for_stop(self.lab)
        return False

    async def _cancel_all(self) -> None:
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(*tasks, return_exceptions=True)
        self.running.clear()

    def _cancelled(self, sid: str) -> None:
        rec = self.lab.state.subtasks[sid]
        if done(rec):
            return  # it ended as it was cancelled
        again = ("its work runs again from its base commit" if rec.status == "running"
                 else "it is graded")
        self.lab.emit("subtask_cancelled", iteration=rec.iteration, subtask_id=sid,
                      reason=f"stop --now; {again} at resume")
