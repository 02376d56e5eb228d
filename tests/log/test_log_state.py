"""The fold: best, baseline, critique exclusion, resume bookkeeping, cost, replay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from labcoat.log import Journal, load_state
from labcoat.log.state import RunState

from .helpers import EXPERIMENT, start


def _plan(j: Journal, it: int, *specs: tuple[str, str, int]) -> None:
    j.append("plan_proposed", iteration=it, subtasks=[
        {"id": sid, "iteration": it, "role": role, "instructions": "x", "base_commit": "c0",
         "seed": seed} for sid, role, seed in specs])


def _done(j: Journal, sid: str, role: str, metric: float | None, seed: int = 0,
          **extra: Any) -> None:
    j.append("subtask_started", subtask_id=sid, role=role, attempt=1, base_commit="c0")
    j.append("subtask_finished", subtask_id=sid, role=role, commit=f"commit-{sid}", **extra)
    if metric is not None:
        j.append("graded", subtask_id=sid, commit=f"commit-{sid}", seed=seed,
                 metrics={"acc": metric}, metric=metric)


def _journal(tmp_path: Path, direction: str = "maximize") -> Journal:
    j = Journal.open(tmp_path / "run", "r", create=True)
    start(j, experiment={**EXPERIMENT, "metric": {"name": "acc", "direction": direction}})
    return j


def test_best_ties_direction_and_own_seed(tmp_path: Path) -> None:
    with _journal(tmp_path, "minimize") as j:
        _plan(j, 1, ("a", "reproducer", 0), ("b", "engineer", 0), ("c", "engineer", 7),
              ("d", "engineer", 0), ("e", "engineer", 0))
        _done(j, "a", "reproducer", 0.5)
        _done(j, "b", "engineer", 0.3)
        _done(j, "c", "engineer", 0.1, seed=0)  # graded, but not at its own seed 7
        _done(j, "d", "engineer", 0.3)  # ties b: the earlier wins
        j.append("graded", subtask_id="e", commit="x", seed=0, metrics={}, metric=0.01)
        state = j.state
    assert state.baseline == 0.5
    assert state.best is not None and (state.best.subtask, state.best.metric) == ("b", 0.3)
    assert [s.id for s in state.unfinished()] == ["e"]  # graded but never finished


def test_not_reproducible_targets_are_excluded(tmp_path: Path) -> None:
    with _journal(tmp_path) as j:
        _plan(j, 1, ("a", "engineer", 0), ("b", "engineer", 0), ("k", "critic", 0))
        _done(j, "a", "engineer", 0.7)
        _done(j, "b", "engineer", 0.9)
        assert j.state.best.subtask == "b"  # type: ignore[union-attr]
        _done(j, "k", "critic", None, critique={"target": "b", "verdict": "not_reproducible",
                                                "reason": "seed luck"})
        assert j.state.best.subtask == "a"  # type: ignore[union-attr]
        j.append("critique", subtask_id="k", target="b", verdict="reproducible")
        assert j.state.best.subtask == "b"  # type: ignore[union-attr]
        assert j.state.subtasks["k"].critique["verdict"] == "reproducible"  # type: ignore[index]


def test_interrupted_subtask_and_resume(tmp_path: Path) -> None:
    with _journal(tmp_path) as j:
        _plan(j, 1, ("a", "engineer", 0), ("b", "engineer", 0), ("c", "engineer", 0))
        _done(j, "a", "engineer", 0.5)
        j.append("subtask_started", subtask_id="b", role="engineer", attempt=1,
                 base_commit="c0")
        j.append("budget_exhausted", kind="usd", limit=1.0, spent=1.01)
        j.append("run_paused", reason="budget")
    state = load_state(tmp_path / "run")
    assert state.status == "paused" and state.budget_exhausted
    assert [(s.id, s.status, s.attempts) for s in state.unfinished()] == [
        ("b", "running", 1), ("c", "planned", 0)]
    with Journal.open(tmp_path / "run") as j:
        j.append("run_resumed", pid=123, overrides={"budget_usd": 5.0})
        assert j.state.status == "running" and not j.state.budget_exhausted
        assert j.state.config["budget_usd"] == 5.0 and j.state.resumes == 1
        j.append("subtask_started", subtask_id="b", role="engineer", attempt=2,
                 base_commit="c0")
        j.append("subtask_failed", subtask_id="b", role="engineer", attempt=2, error="boom")
        assert j.state.subtasks["b"].attempts == 2 and j.state.subtasks["b"].error == "boom"
        assert [s.id for s in j.state.unfinished()] == ["c"]


def test_cost_and_replay(tmp_path: Path) -> None:
    with _journal(tmp_path) as j:
        _plan(j, 1, ("a", "engineer", 0))
        usage = {"input_tokens": 100, "output_tokens": 10, "cache_read_tokens": 5,
                 "cache_write_tokens": 1}
        j.append("llm_call", role="manager", model="m", request_hash="h1",
                 response={"t": 1}, usage=usage, cost_usd=0.5)
        j.append("llm_call", role="engineer", subtask_id="a", model="m", request_hash="h2",
                 response={"t": 2}, usage=usage, cost_usd=None)
        j.append("llm_call", role="engineer", subtask_id="a", model="m", request_hash="h2",
                 response={"t": 2}, usage=usage, cost_usd=0.7, replayed=True)
        cost = j.state.cost
    assert cost.total.calls == 2 and cost.total.usd == 0.5 and cost.total.tokens == 232
    assert cost.total.unknown_cost_calls == 1
    assert cost.by_role["engineer"].unknown_cost_calls == 1 and cost.by_iteration[1].calls == 2
    assert load_state(tmp_path / "run").logged_llm_calls == 2  # the replayed one is not new


def test_iterations_without_improvement(tmp_path: Path) -> None:
    with _journal(tmp_path) as j:
        for it, improved in enumerate([True, False, True, False, False], 1):
            j.append("iteration_closed", iteration=it, improved=improved)
        assert j.state.iterations_without_improvement == 2
        assert RunState().iterations_without_improvement == 0
        j.append("run_failed", error="docker went away")
    state = load_state(tmp_path / "run")
    assert state.status == "failed" and state.stop_reason == "docker went away"
