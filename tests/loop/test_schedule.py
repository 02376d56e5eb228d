"""Where a run goes next, as pure functions of its log (`labcoat.orchestrator.schedule`), and the
scheduler's answer when the time limit strikes.

No Docker: every `RunState` here is the fold of real events written through the real `Journal`
(the log a run writes), so these are the answers a resumed run gets from its log. The last
tests drive the real `Scheduler` over such a log with the time already up: it must pause when
work is left half done and finish when nothing is, before any sandbox is asked for.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from labcoat.agents.role import Subtask
from labcoat.log import Journal, RunState, fold, parse_event
from labcoat.orchestrator.schedule import (
    all_closed,
    done,
    needs_grading,
    next_to_plan,
    open_iteration,
    ready,
    reviewable,
    stop_reason,
)

EXPERIMENT = {"name": "toy", "metric": {"name": "score", "direction": "maximize"}}
BASE = "c0" * 20


class Log:
    """A run's log written through the real Journal, to ask the schedule at each point."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    @property
    def state(self) -> RunState:
        return self.journal.state

    def ready(self) -> list[str]:
        return [s.id for s in ready(self.state)]

    def plan(self, it: int, *roles: str, **extra: Any) -> list[str]:
        first = 1 + sum(1 for s in self.state.subtasks.values() if s.iteration == it)
        subs = [Subtask(id=f"it{it:03d}-{first + k:02d}", iteration=it, role=role,
                        instructions="x", base_commit=BASE, **extra)
                for k, role in enumerate(roles)]
        self.journal.append("plan_proposed", iteration=it, subtasks=subs, rationale="test")
        return [s.id for s in subs]

    def start(self, sid: str) -> None:
        rec = self.state.subtasks[sid]
        self.journal.append("subtask_started", iteration=rec.iteration, subtask_id=sid,
                            role=rec.role, attempt=rec.attempts + 1, base_commit=BASE)

    def finish(self, sid: str, *, tree: str | None = "a" * 40, **extra: Any) -> None:
        self.start(sid)
        rec = self.state.subtasks[sid]
        self.journal.append("subtask_finished", iteration=rec.iteration, subtask_id=sid,
                            role=rec.role, tree=tree, **extra)

    def fail(self, sid: str) -> None:
        self.start(sid)
        rec = self.state.subtasks[sid]
        self.journal.append("subtask_failed", iteration=rec.iteration, subtask_id=sid,
                            role=rec.role, error="boom")

    def grade(self, sid: str, metric: float, seed: int | None = None) -> None:
        rec = self.state.subtasks[sid]
        self.journal.append("graded", iteration=rec.iteration, subtask_id=sid,
                            commit=sid.encode().hex().ljust(40, "0"),
                            seed=rec.seed if seed is None else seed,
                            metrics={"score": metric}, metric=metric)

    def work(self, sid: str, metric: float) -> None:
        self.finish(sid)
        self.grade(sid, metric)

    def close(self, it: int, improved: bool) -> None:
        self.journal.append("iteration_closed", iteration=it, improved=improved)

    def iteration(self, it: int, improved: bool, *roles: str) -> None:
        """Plan, work, grade and close iteration `it` in one go."""
        for sid in self.plan(it, *(roles or ("engineer",))):
            self.work(sid, 0.5)
        self.close(it, improved)


@pytest.fixture
def new_log(tmp_path: Path) -> Iterator[Callable[..., Log]]:
    journals: list[Journal] = []

    def make(**config: Any) -> Log:
        journal = Journal.open(tmp_path / f"run{len(journals)}", "run-schedule", create=True)
        journals.append(journal)
        journal.append("run_started", config={"max_iterations": 10, "patience": 0, **config},
                       experiment=EXPERIMENT, experiment_dir="experiments/toy",
                       experiment_hash="e" * 64, grader_hash="g" * 64, labcoat_version="0",
                       seed=0, brain="search", base_commit=BASE)
        return Log(journal)

    yield make
    for journal in journals:
        journal.close()


# --- one iteration, step by step ---------------------------------------------------------------


def test_one_iteration_step_by_step(new_log: Callable[..., Log]) -> None:
    log = new_log()
    s = log.state
    assert next_to_plan(s, 1) == 1 and open_iteration(s) is None and all_closed(s)
    assert log.ready() == []
    a, b, c = log.plan(1, "reproducer", "engineer", "engineer")
    s = log.state
    assert next_to_plan(s, 1) is None  # the barrier: iteration 1 has not closed
    assert next_to_plan(s, 2) == 2  # two in flight: 2 is planned from iteration 0
    assert open_iteration(s) == 1 and not all_closed(s) and not reviewable(s, 1)
    assert log.ready() == [a, b, c]

    log.start(a)  # started, never finished (a crash here): it is worked again
    log.finish(b)  # worked, not graded yet: still has work left
    assert log.ready() == [a, b, c]
    log.finish(a)
    log.work(c, 0.70)
    log.grade(a, 0.64)
    assert log.ready() == [b] and not reviewable(log.state, 1)
    log.grade(b, 0.90)
    assert log.ready() == [] and reviewable(log.state, 1)

    (critic,) = log.plan(1, "critic", target=b, seeds=(1, 2))
    assert open_iteration(log.state) == 1  # the review belongs to the same iteration
    assert log.ready() == [critic] and not reviewable(log.state, 1)
    log.grade(b, 0.91, seed=1)  # re-grades at new seeds are not the result's own grade
    log.grade(b, 0.89, seed=2)
    log.finish(critic, tree=None, critique={"target": b, "verdict": "reproducible",
                                            "reason": "beyond the noise"})
    assert log.ready() == [] and reviewable(log.state, 1)
    log.close(1, improved=True)
    s = log.state
    assert open_iteration(s) is None and all_closed(s) and next_to_plan(s, 1) == 2


def test_needs_grading_and_done(new_log: Callable[..., Log]) -> None:
    log = new_log()
    a, b, c, d = log.plan(1, "engineer", "engineer", "engineer", "critic", seed=3)
    log.start(a)
    log.finish(b)
    log.fail(c)
    log.finish(d, tree=None)  # a review: no tree of its own to grade
    subs = log.state.subtasks
    assert [needs_grading(subs[x]) for x in (a, b, c, d)] == [False, True, False, False]
    assert [done(subs[x]) for x in (a, b, c, d)] == [False, False, True, True]
    log.grade(b, 0.7, seed=0)  # another seed than its own (3)
    assert needs_grading(log.state.subtasks[b])
    log.grade(b, 0.7)
    assert not needs_grading(log.state.subtasks[b]) and done(log.state.subtasks[b])
    assert log.ready() == [a]  # the failed one is neither worked nor graded again


# --- several iterations in flight -------------------------------------------------------------


def test_oldest_iteration_first_and_closed_in_order(new_log: Callable[..., Log]) -> None:
    log = new_log()
    (a,) = log.plan(1, "engineer")
    (b,) = log.plan(2, "engineer")  # depth 2: planned before 1 closed
    log.work(a, 0.6)
    (critic,) = log.plan(1, "critic", target=a, seeds=(1,))  # planned after iteration 2's
    assert log.ready() == [critic, b]  # oldest iteration first, whatever the plan order
    log.work(b, 0.7)
    assert reviewable(log.state, 2) is False  # 1 has not closed
    assert next_to_plan(log.state, 2) is None  # 3 waits for 1 to close
    log.finish(critic, tree=None)
    log.close(1, improved=True)
    s = log.state
    assert open_iteration(s) == 2 and reviewable(s, 2) and next_to_plan(s, 2) == 3


# --- when no further iteration is planned -----------------------------------------------------


def test_max_iterations(new_log: Callable[..., Log]) -> None:
    log = new_log(max_iterations=2)
    log.iteration(1, True)
    assert stop_reason(log.state, depth=1) is None and next_to_plan(log.state, 1) == 2
    log.iteration(2, True)
    assert stop_reason(log.state, depth=1) == "reached max iterations (2)"
    assert next_to_plan(log.state, 1) is None
    # the first reason given, even when the time is up too
    assert stop_reason(log.state, depth=1, time_up=True) == "reached max iterations (2)"


def test_patience_counts_the_iterations_the_next_plan_is_made_from(
        new_log: Callable[..., Log]) -> None:
    log = new_log(patience=2)
    for it, improved in enumerate([True, False], 1):
        log.iteration(it, improved)
    assert stop_reason(log.state, depth=1) is None
    log.iteration(3, False)
    assert stop_reason(log.state, depth=1) == "no improvement for 2 iteration(s)"
    assert next_to_plan(log.state, 1) is None
    # Two in flight: iteration 4 is planned from the run as iteration 2 closed (one
    # iteration without improvement), so the same log does not stop that pipeline yet.
    assert stop_reason(log.state, depth=2) is None and next_to_plan(log.state, 2) == 4


def test_patience_zero_never_stops_the_run(new_log: Callable[..., Log]) -> None:
    log = new_log(patience=0)
    for it in range(1, 6):
        log.iteration(it, False)
    assert stop_reason(log.state, depth=1) is None and next_to_plan(log.state, 1) == 6


# --- the time limit ---------------------------------------------------------------------------


def test_time_limit_plans_nothing_more_and_keeps_the_half_done_work(
        new_log: Callable[..., Log]) -> None:
    log = new_log(time_limit_s=2)
    a, b, c = log.plan(1, "reproducer", "engineer", "engineer")
    log.work(a, 0.64)
    log.start(b)  # the limit strikes here: b is mid-work, c not started
    assert stop_reason(log.state, depth=1, time_up=True) == "reached the time limit (2 s)"
    assert log.ready() == [b, c]
    log.journal.append("budget_exhausted", kind="time", limit=2, spent=2.5)
    log.journal.append("run_paused", reason="time limit")
    log.journal.append("run_resumed", pid=1, overrides={"time_limit_s": 600})
    assert log.ready() == [b, c]  # the resume works them: nothing dropped, nothing redone
    assert log.state.subtasks[a].status == "finished"


def test_the_answers_come_from_the_log_file_alone(new_log: Callable[..., Log],
                                                  tmp_path: Path) -> None:
    log = new_log()
    a, b = log.plan(1, "reproducer", "engineer")
    log.work(a, 0.64)
    log.finish(b)
    log.journal.flush()
    lines = (tmp_path / "run0" / "log.jsonl").read_text().splitlines()
    events = [parse_event({k: v for k, v in json.loads(line).items() if k != "sum"})
              for line in lines]
    assert [s.id for s in ready(fold(events))] == [b] == log.ready()
    assert [s.id for s in ready(fold(events[:-2]))] == [b]  # before b's finish: b's work
    assert not reviewable(fold(events), 1) and reviewable(log.state, 1) is False


# --- the scheduler when the time is up (no sandbox is ever asked for) ------------------------


def drive(log: Log, tmp_path: Path) -> None:
    """Run the real Scheduler over `log`'s run, whose time limit of 0 s is always up. It must
    end on its own at once: it may not start any work (30 s: a hang fails, not blocks)."""
    asyncio.run(asyncio.wait_for(scheduler_over(log, tmp_path).run(), timeout=30))


def scheduler_over(log: Log, tmp_path: Path) -> Any:
    from labcoat.agents.registry import default_registry
    from labcoat.agents.search import SearchManager
    from labcoat.experiment import load_experiment
    from labcoat.orchestrator.lab import Lab
    from labcoat.orchestrator.scheduler import Scheduler
    from labcoat.sandboxes.docker import DockerProvider
    from labcoat.workspace import Workspace
    from tests.loop.conftest import make_experiment

    exp = load_experiment(make_experiment(tmp_path / "toy"))
    run_dir = tmp_path / "run0"
    workspace, _ = Workspace.create(exp.workspace_dir, run_dir / "workspace")
    lab = Lab(run_dir=run_dir, journal=log.journal, experiment=exp, workspace=workspace,
              provider=DockerProvider(log.state.run_id), roles=default_registry(exp.dir),
              manager=SearchManager(exp, ["reproducer", "engineer", "critic"], parallel=1))
    return Scheduler(lab)


def test_time_up_mid_iteration_pauses(new_log: Callable[..., Log], tmp_path: Path) -> None:
    log = new_log(time_limit_s=0, max_iterations=3)
    a, b = log.plan(1, "reproducer", "engineer")
    log.work(a, 0.64)
    before = len(log.journal.events)
    drive(log, tmp_path)
    state = log.state
    assert state.status == "paused" and state.budget is not None and state.budget.kind == "time"
    assert "mid-iteration" in (state.stop_reason or "")
    added = [e.type for e in log.journal.events[before:]]
    assert added == ["budget_exhausted", "run_paused"]  # nothing started, nothing planned
    assert log.ready() == [b]


def test_time_up_between_iterations_finishes(new_log: Callable[..., Log],
                                             tmp_path: Path) -> None:
    log = new_log(time_limit_s=0, max_iterations=3)
    log.iteration(1, True, "reproducer", "engineer")
    drive(log, tmp_path)
    state = log.state
    assert state.status == "finished" and state.budget is None
    assert state.stop_reason == "reached the time limit (0 s)"
    assert state.iteration == 1  # nothing more was planned
