"""The search brain plans from the log alone: the same log gives the same plan (a resumed run
plans exactly what it would have), the run's seed picks the trials, and the critic is asked to
re-grade the leader with new seeds against the baseline. No Docker: the log is a real one,
written through the Journal."""

from __future__ import annotations

import asyncio
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from labcoat.agents.manager import Plan
from labcoat.agents.search import SearchManager, Trial, propose
from labcoat.agents.search.gp import blocks_of, encode, kernel, matern, targets
from labcoat.agents.search.propose import Sampler
from labcoat.experiment import Experiment, SearchParam, load_experiment
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


SPACE = {"model": {"type": "categorical", "choices": ["a", "b", "c"]},
         "C": {"type": "log_float", "low": 1e-4, "high": 100.0},
         "depth": {"type": "int", "low": 2, "high": 24, "step": 2},
         "x": {"type": "float", "low": -1.0, "high": 1.0},
         "frac": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.25}}


def valid(p: object) -> bool:
    """Whether a proposal is a value of SPACE in every parameter, of the right type."""
    assert isinstance(p, dict) and set(p) == set(SPACE)
    c, depth, x, frac = p["C"], p["depth"], p["x"], p["frac"]
    return (p["model"] in ("a", "b", "c") and isinstance(c, float) and 1e-4 <= c <= 100.0
            and isinstance(depth, int) and 2 <= depth <= 24 and depth % 2 == 0
            and isinstance(x, float) and -1.0 <= x <= 1.0
            and isinstance(frac, float) and frac in (0.0, 0.25, 0.5, 0.75, 1.0))


def strata(values: list[float], low: float, high: float) -> list[int]:
    """Which third of [low, high] each value lies in."""
    return sorted(min(int((v - low) / (high - low) * 3), 2) for v in values)


def test_the_first_batch_spreads_over_the_space(tmp_path: Path) -> None:
    """With nothing known, the 3 trials of iteration 1 take 3 different models and a different
    third of every numeric range (C's on the log scale): independent draws would repeat one."""
    exp = load_experiment(make_experiment(tmp_path / "toy", search_space=SPACE))
    seen = set()
    for seed in range(8):
        with new_run(tmp_path / f"run{seed}", exp, seed=seed) as journal:
            state = journal.state
            first = params(asyncio.run(SearchManager(exp, ROLES, parallel=3).plan(state, 1)))
            assert first == params(asyncio.run(SearchManager(exp, ROLES, parallel=3).plan(state,
                                                                                          1)))
        assert all(valid(p) for p in first)
        ps = [p for p in first if isinstance(p, dict)]
        assert sorted(p["model"] for p in ps) == ["a", "b", "c"]
        assert strata([math.log(p["C"]) for p in ps], math.log(1e-4), math.log(100.0)) == [0, 1, 2]
        assert strata([p["depth"] for p in ps], 2, 26) == [0, 1, 2]
        assert strata([p["x"] for p in ps], -1.0, 1.0) == [0, 1, 2]
        seen.add(str(first))
    assert len(seen) == 8  # the run seed picks the design


def grade_plan(journal: Journal, p: Plan, score: Callable[[float], float]) -> None:
    """Plan, run and grade every subtask of `p`; the reproducer's x is the baseline's 0.5."""
    journal.append("plan_proposed", iteration=p.subtasks[0].iteration, subtasks=p.subtasks,
                   rationale=p.rationale)
    for sub in p.subtasks:
        value = score(float(str(sub.params.get("x", 0.5))))
        journal.append("subtask_started", subtask_id=sub.id, role=sub.role, attempt=1,
                       base_commit="c0")
        journal.append("subtask_finished", subtask_id=sub.id, role=sub.role, tree="t" * 40)
        journal.append("graded", subtask_id=sub.id, commit=f"{sub.id:0<40}",
                       seed=journal.state.seed, metrics={"score": value}, metric=value)


def test_later_trials_follow_the_grades(tmp_path: Path) -> None:
    """From iteration 2 on, the brain proposes from the graded trials in the log: two runs with
    the same seed and the same first trials, graded the other way round, go different ways;
    each is valid and replanned the same from its log file (as after a resume)."""
    exp = load_experiment(make_experiment(tmp_path / "toy", search_space=SPACE))
    later = []
    for name, score in (("up", lambda x: x), ("down", lambda x: -x)):
        with new_run(tmp_path / name, exp, seed=3) as journal:
            grade_plan(journal, plan(exp, journal.state, 1), score)
            second = plan(exp, journal.state, 2)
        assert second == plan(exp, load_state(tmp_path / name), 2)
        assert all(valid(p) for p in params(second)) and len(params(second)) == 2
        later.append(params(second))
    assert later[0] != later[1]


def space_of(raw: dict[str, dict[str, object]]) -> dict[str, SearchParam]:
    return {k: TypeAdapter(SearchParam).validate_python(v) for k, v in raw.items()}


def later_distances(space: dict[str, SearchParam], f: Callable[[dict[str, Any]], float],
                    where: Callable[[dict[str, Any]], float], sampler: Sampler) -> list[float]:
    """How far from the optimum (`where` gives a point's distance) the trials of iterations 2
    and 3 land, over 20 runs of 3 batches of 2 trials (maximising f)."""
    out = []
    for seed in range(20):
        history: list[Trial] = []
        for iteration in (1, 2, 3):
            batch = propose(space, history, direction="maximize", seed=seed,
                            iteration=iteration, n=2, sampler=sampler, baseline=-1.0)
            out += [where(p) for p in batch] if iteration > 1 else []
            history += [Trial(p, f(p)) for p in batch]
    return out


def test_later_batches_go_where_the_grades_point() -> None:
    """On a smooth landscape (an optimum 80 % of the way along a log-scale range) the trials
    of iterations 2 and 3 land far nearer the optimum than random search's: the brain follows
    the grades of the first batch."""
    space = space_of({"lr": {"type": "log_float", "low": 1e-5, "high": 1.0}})

    def where(p: dict[str, Any]) -> float:
        return abs(math.log10(p["lr"]) / 5 + 1 - 0.8)

    def f(p: dict[str, Any]) -> float:
        return -where(p) ** 2

    search = statistics.fmean(later_distances(space, f, where, "search"))
    rand = statistics.fmean(later_distances(space, f, where, "random"))
    assert search < rand / 2, f"search {search:.3f} from the optimum, random {rand:.3f}"


def test_a_choice_no_trial_has_tried_comes_next() -> None:
    """After a first batch on two of four branches, the second batch tries the other two
    before it returns to either (random search would repeat one branch about half the time)."""
    space = space_of({"kind": {"type": "categorical", "choices": ["a", "b", "c", "d"]},
                      "x": {"type": "float", "low": 0.0, "high": 1.0}})
    for seed in range(10):
        first = propose(space, [], direction="maximize", seed=seed, iteration=1, n=2)
        history = [Trial(p, float(p["x"])) for p in first]
        second = propose(space, history, direction="maximize", seed=seed, iteration=2, n=2,
                         baseline=0.5)
        assert sorted(p["kind"] for p in first + second) == ["a", "b", "c", "d"]


def test_the_score_to_beat_is_the_baseline_when_no_trial_beats_it() -> None:
    """A trial gains nothing unless it beats the baseline, so expected improvement is measured
    from the baseline's grade when it leads (either direction); grades below the median all
    count as the median (one bad trial says little about its neighbours)."""
    scores, best = targets([0.5, 0.9, None, 0.1], 0.95, sign=1.0)
    assert best > max(scores)  # the baseline's score: it leads
    assert scores[0] == scores[2] == scores[3] == 0.0 < scores[1]
    low_scores, low_best = targets([0.5, 0.9], 0.95, sign=-1.0)  # minimise: 0.5 leads
    assert low_best == max(low_scores) == low_scores[0] > 0.0
    assert targets([0.5, 0.9], None, sign=1.0)[1] == targets([0.5, 0.9], None, sign=1.0)[0][1]


def test_proposals_are_valid_and_repeatable_on_every_kind_of_parameter() -> None:
    """Later batches stay inside the space on every parameter type (a failed trial among the
    history), and are the same for the same history and seed (a resume replans them) and not
    for another."""
    space = space_of(SPACE)
    first = propose(space, [], direction="minimize", seed=4, iteration=1, n=3)
    history = [Trial(p, float(i)) for i, p in enumerate(first)] + [Trial(first[0], None)]
    later = propose(space, history, direction="minimize", seed=4, iteration=2, n=3,
                    baseline=1.5)
    assert all(valid(p) for p in later)
    assert later == propose(space, history, direction="minimize", seed=4, iteration=2, n=3,
                            baseline=1.5)
    assert later != propose(space, history, direction="minimize", seed=5, iteration=2, n=3,
                            baseline=1.5)


def test_a_declared_baseline_is_a_trial_the_next_batch_builds_on(tmp_path: Path) -> None:
    """When every parameter declares its `default`, the baseline's grade counts as a trial at
    those values: the same log plans a different second batch than it does without them (and
    the same one again when replanned from the file, as after a resume)."""
    defaults = {"model": "b", "C": 1.0, "depth": 30, "x": 0.5, "frac": 0.5}
    declared = {k: {**v, "default": defaults[k]} for k, v in SPACE.items()}
    later = []
    for name, space in (("plain", SPACE), ("declared", declared)):
        exp = load_experiment(make_experiment(tmp_path / f"toy-{name}", search_space=space))
        with new_run(tmp_path / name, exp, seed=3) as journal:
            grade_plan(journal, plan(exp, journal.state, 1), lambda x: 1 - abs(x - 0.5))
            second = plan(exp, journal.state, 2)
        assert second == plan(exp, load_state(tmp_path / name), 2)
        assert all(valid(p) for p in params(second))
        later.append(params(second))
    assert later[0] != later[1]


def test_one_change_from_a_point_keeps_it_close() -> None:
    """Half the kernel is a sum over parameters, so a point that differs from another in one
    of three parameters (here a categorical choice) stays well correlated with it; the full
    kernel alone would make them strangers."""
    space = space_of({"kind": {"type": "categorical", "choices": ["a", "b"]},
                      "x": {"type": "float", "low": 0.0, "high": 1.0},
                      "y": {"type": "float", "low": 0.0, "high": 1.0}})
    a, b = (np.array([encode(space, {"kind": k, "x": 0.5, "y": 0.5})]) for k in "ab")
    assert kernel(a, b, blocks_of(space))[0, 0] > 0.3
    assert matern(a, b)[0, 0] < 0.05


def test_numeric_choices_are_a_range_not_strangers() -> None:
    """A categorical parameter of numbers (batch sizes) is ordered: the first batch of two
    takes one choice from each half, and when the grades rise with the choice the next trials
    go to the large end (a one-hot search would try each untried size in turn, small or not:
    large only about 2 times in 5)."""
    sizes = [1, 2, 4, 8, 16, 32, 64, 128]
    space = space_of({"bs": {"type": "categorical", "choices": sizes},
                      "x": {"type": "float", "low": 0.0, "high": 1.0}})
    large = 0
    for seed in range(20):
        first = propose(space, [], direction="maximize", seed=seed, iteration=1, n=2)
        assert sorted(sizes.index(p["bs"]) // 4 for p in first) == [0, 1]
        history = [Trial({"bs": bs, "x": x}, math.log2(bs) / 7)
                   for bs, x in ((1, 0.2), (8, 0.7), (64, 0.4))]
        second = propose(space, history, direction="maximize", seed=seed, iteration=2, n=2,
                         baseline=0.3)
        large += sum(p["bs"] >= 32 for p in second)
    assert large >= 30, f"{large} of 40 proposals at 32 or more"
