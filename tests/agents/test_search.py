"""The search brain plans from the log alone: the same log gives the same plan (a resumed run
plans exactly what it would have), the run's seed picks the trials, and the critic is asked to
re-grade the leader with new seeds against the baseline. No Docker: the log is a real one,
written through the Journal."""

from __future__ import annotations

import asyncio
from pathlib import Path

from labcoat.agents.manager import Plan
from labcoat.agents.search import SearchManager
from labcoat.experiment import Experiment, load_experiment
from labcoat.log import Journal, RunState, load_state
from tests.log.helpers import start
from tests.loop.conftest import make_experiment

ROLES = ["reproducer", "engineer", "critic"]


def plan(exp: Experiment, state: RunState, iteration: int) -> Plan:
    """A fresh manager each time, as after a resume."""
    return asyncio.run(SearchManager(exp, ROLES, parallel=2).plan(state, iteration))


def params(p: Plan) -> list[object]:
    return [s.params for s in p.subtasks if s.role == "engineer"]


def new_run(run_dir: Path, exp: Experiment, seed: int) -> Journal:
    journal = Journal.open(run_dir, f"run-seed-{seed}", create=True)
    start(journal, seed=seed, experiment=exp.spec.model_dump(mode="json"))
    return journal


def test_same_log_same_plan_and_the_seed_picks_the_trials(tmp_path: Path) -> None:
    exp = load_experiment(make_experiment(tmp_path / "toy"))
    with new_run(tmp_path / "a", exp, seed=5) as journal:
        first = plan(exp, journal.state, 1)
        assert [s.role for s in first.subtasks] == ["reproducer", "engineer", "engineer"]
        assert first == plan(exp, journal.state, 1)
        journal.append("plan_proposed", iteration=1, subtasks=first.subtasks,
                       rationale=first.rationale)
        for sub, score in zip(first.subtasks, [0.64, 0.70, 0.80], strict=True):
            journal.append("subtask_started", subtask_id=sub.id, role=sub.role, attempt=1,
                           base_commit="c0")
            journal.append("subtask_finished", subtask_id=sub.id, role=sub.role, tree="t" * 40)
            journal.append("graded", subtask_id=sub.id, commit=f"{sub.id:0<40}", seed=5,
                           metrics={"score": score}, metric=score)
        second = plan(exp, journal.state, 2)
    assert second == plan(exp, load_state(tmp_path / "a"), 2)  # folded back from the file
    assert params(second) != params(first)  # trial 3 and 4, not 1 and 2 again
    for p in params(first) + params(second):
        assert isinstance(p, dict) and 0.0 <= float(p["x"]) <= 1.0  # type: ignore[arg-type]
    with new_run(tmp_path / "b", exp, seed=6) as other:
        assert params(plan(exp, other.state, 1)) != params(first)


def test_review_asks_the_critic_for_new_seeds_against_the_baseline(tmp_path: Path) -> None:
    exp = load_experiment(make_experiment(tmp_path / "toy"))  # critic: 2 seeds, 1 leader
    with new_run(tmp_path / "a", exp, seed=5) as journal:
        subs = plan(exp, journal.state, 1).subtasks
        journal.append("plan_proposed", iteration=1, subtasks=subs, rationale="")
        for sub, score in zip(subs, [0.64, 0.70, 0.80], strict=True):
            journal.append("subtask_finished", subtask_id=sub.id, role=sub.role, tree="t" * 40)
            journal.append("graded", subtask_id=sub.id, commit=f"{sub.id:0<40}", seed=5,
                           metrics={"score": score}, metric=score)
        review = asyncio.run(SearchManager(exp, ROLES, parallel=2).review(journal.state, 1))
    (critic,) = review.subtasks
    assert critic.role == "critic" and critic.target == subs[2].id  # the leader (0.80)
    assert critic.seeds == (6, 7) and critic.base_commit == f"{subs[2].id:0<40}"
    assert critic.params["reference"] == 0.64  # the baseline it must beat
