"""The critic's judgement (`labcoat.agents.judge.judge`): every verdict, both metric directions.

A pure function of the scores by seed, the reference the result must beat and the experiment's
critic settings; the search brain's critic and the LLM critic's analysis both come from it.
"""

from __future__ import annotations

import pytest

from labcoat.agents.judge import judge
from labcoat.experiment import ExperimentSpec


def spec(direction: str = "maximize", noise_sigmas: float = 2.0) -> ExperimentSpec:
    return ExperimentSpec.model_validate({
        "name": "toy", "run": "python3 train.py", "evaluate": "python3 /grader/evaluate.py",
        "metric": {"name": "score", "direction": direction},
        "critic": {"seeds": 2, "noise_sigmas": noise_sigmas}})


def test_a_gain_well_beyond_the_seed_noise_is_reproducible() -> None:
    scores = {"0": 0.90, "1": 0.91, "2": 0.905}
    c = judge("it001-02", scores, reference=0.80, spec=spec())
    assert c.verdict == "reproducible" and c.target == "it001-02"
    assert c.mean == pytest.approx(0.905) and c.std == pytest.approx(0.005)
    assert c.metrics_by_seed == scores and "exceeds the noise" in c.reason


def test_a_gain_within_the_seed_noise_is_not_reproducible() -> None:
    # Best at its own seed (0.84 > 0.79), but over three seeds the gain (+0.01) is well inside
    # two standard deviations (0.07): seed luck.
    c = judge("it001-02", {"0": 0.84, "1": 0.78, "2": 0.78}, reference=0.79, spec=spec())
    assert c.verdict == "not_reproducible"
    assert c.mean == pytest.approx(0.80) and "is within the noise" in c.reason


def test_a_result_worse_than_its_reference_is_not_reproducible_even_without_noise() -> None:
    c = judge("t", {"0": 0.7, "1": 0.7}, reference=0.8, spec=spec())
    assert c.std == 0 and c.verdict == "not_reproducible"
    # no noise and no gain is no gain either
    assert judge("t", {"0": 0.8, "1": 0.8}, reference=0.8, spec=spec()).verdict == \
        "not_reproducible"
    assert judge("t", {"0": 0.81, "1": 0.81}, reference=0.8, spec=spec()).verdict == \
        "reproducible"


def test_noise_sigmas_sets_how_far_beyond_the_noise_a_gain_must_be() -> None:
    scores = {"0": 1.0, "1": 3.0}  # mean 2, std 1.414: a gain of 2 over a reference of 0
    assert judge("t", scores, reference=0.0, spec=spec(noise_sigmas=1)).verdict == "reproducible"
    assert judge("t", scores, reference=0.0, spec=spec(noise_sigmas=2)).verdict == \
        "not_reproducible"


def test_minimize_a_lower_loss_is_the_gain() -> None:
    losses = {"0": 0.20, "1": 0.21, "2": 0.205}
    assert judge("t", losses, reference=0.30, spec=spec("minimize")).verdict == "reproducible"
    assert judge("t", losses, reference=0.10, spec=spec("minimize")).verdict == \
        "not_reproducible"
    # the same numbers the other way round: now 0.30 would have been the better score
    assert judge("t", losses, reference=0.30, spec=spec("maximize")).verdict == \
        "not_reproducible"


def test_one_graded_seed_is_suspicious() -> None:
    c = judge("t", {"0": 0.99}, reference=0.5, spec=spec())
    assert c.verdict == "suspicious" and "only 1 seed" in c.reason and c.mean is None
    assert judge("t", {}, reference=0.5, spec=spec()).verdict == "suspicious"


def test_nothing_to_compare_with_is_ok() -> None:
    c = judge("t", {"0": 0.5, "1": 0.7}, reference=None, spec=spec())
    assert c.verdict == "ok" and c.mean == pytest.approx(0.6)
    assert c.std == pytest.approx(0.1414, rel=1e-3)
