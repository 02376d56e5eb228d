"""The search brain's proposals: Optuna (seeded TPE) over the experiment's `search_space`.

No study is kept between calls: every proposal rebuilds the study from the trials the log
records, with a sampler seeded from (run seed, iteration). So a resumed run proposes exactly what
an uninterrupted one would, and the log stays the only source of truth.

Runs are short (a few iterations of a few trials), so two choices are made for small budgets.
The first batch, with nothing known yet, is a Latin hypercube: every parameter's range is cut
into as many strata as there are trials and each trial takes a different one (categorical
choices as distinct as the batch allows), where independent random draws often land two trials
on the same model or the same corner. After that, TPE models each parameter on its own: the
multivariate kernel, fitted to one or two good points, kept proposing near them, and over 6
trials did no better than random search (benchmarks/research_quality.py measures it).
"""

from __future__ import annotations

import hashlib
import math
import random
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import optuna

    from labcoat.experiment import SearchParam

STARTUP_TRIALS = 2
"""Trials before TPE models the space. Small because runs are short: 3 iterations of 2 trials
with 4 would leave TPE only the last 2. The first batch is the Latin hypercube (`initial_design`);
a later one that still finds fewer than this many trials in the log is drawn at random."""
Sampler = Literal["tpe", "random"]
"""`tpe`: the search brain; `random`: uniform draws, the floor the search brain must beat."""
SAMPLER_NAMES: dict[str, str] = {"tpe": "Optuna (TPE)", "random": "random"}


@dataclass(frozen=True)
class Trial:
    """A finished trial: its parameters and its graded value (None when grading failed)."""

    params: Mapping[str, Any]
    value: float | None


def distributions(space: Mapping[str, SearchParam]) -> dict[str, Any]:
    """Optuna distributions for each parameter of the spec's search space."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for name, p in space.items():
        if p.type == "categorical":
            out[name] = CategoricalDistribution(list(p.choices))
        elif p.type == "int":
            out[name] = IntDistribution(p.low, p.high, step=p.step)
        elif p.type == "log_float":
            out[name] = FloatDistribution(p.low, p.high, log=True)
        else:
            out[name] = FloatDistribution(p.low, p.high, step=p.step)
    return out


def derived_seed(seed: int, iteration: int, salt: str = "") -> int:
    """A sampler seed that depends only on the run seed, the iteration and `salt` (a custom
    role's name, so that its proposals are its own)."""
    key = f"{seed}:{iteration}" + (f":{salt}" if salt else "")
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:4], "big")


def make_sampler(kind: Sampler, seed: int) -> optuna.samplers.BaseSampler:
    import optuna

    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # multivariate=False said outright: Optuna 5 made the multivariate kernel the default
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS,
                                          multivariate=False)


def rebuild_study(space: Mapping[str, SearchParam], history: Sequence[Trial], *,
                  direction: str, seed: int, sampler: Sampler = "tpe") -> optuna.Study:
    """A fresh in-memory study holding `history` as finished trials."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = distributions(space)
    study = optuna.create_study(
        direction="minimize" if direction == "minimize" else "maximize",
        sampler=make_sampler(sampler, seed))
    for t in history:
        if not _fits(t.params, dists):
            continue  # the search space changed since this trial; it no longer informs it
        state = TrialState.COMPLETE if t.value is not None else TrialState.FAIL
        study.add_trial(create_trial(state=state, value=t.value, params=dict(t.params),
                                     distributions={k: dists[k] for k in t.params}))
    return study


def _fits(params: Mapping[str, Any], dists: Mapping[str, Any]) -> bool:
    if set(params) != set(dists):
        return False
    return all(dists[k]._contains(dists[k].to_internal_repr(v)) for k, v in params.items())


def propose(space: Mapping[str, SearchParam], history: Sequence[Trial], *, direction: str,
            seed: int, iteration: int, n: int, salt: str = "",
            sampler: Sampler = "tpe") -> list[dict[str, Any]]:
    """`n` new parameter sets, deterministic given the history, seed, iteration and salt."""
    if not space or n <= 0:
        return []
    if sampler == "tpe" and not history:
        return initial_design(space, n, seed=derived_seed(seed, iteration, salt))
    study = rebuild_study(space, history, direction=direction,
                          seed=derived_seed(seed, iteration, salt), sampler=sampler)
    dists = distributions(space)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TPE warns about independent sampling on some spaces
        trials = [study.ask(dists) for _ in range(n)]
    return [_plain(t.params) for t in trials]


def initial_design(space: Mapping[str, SearchParam], n: int, *,
                   seed: int) -> list[dict[str, Any]]:
    """`n` parameter sets that spread over the space (a Latin hypercube): each numeric
    parameter's range, on its own scale (log for `log_float`), is cut into `n` equal strata and
    every set takes a different one; categorical choices are dealt out in shuffled rounds, so
    the sets differ in each parameter as far as it allows. Deterministic given `seed`."""
    rng = random.Random(seed)
    sets: list[dict[str, Any]] = [{} for _ in range(n)]
    for name, p in space.items():
        if p.type == "categorical":
            rounds = [rng.sample(range(len(p.choices)), len(p.choices))
                      for _ in range(-(-n // len(p.choices)))]
            values = [p.choices[i] for i in [i for r in rounds for i in r][:n]]
        else:
            strata = rng.sample(range(n), n)
            values = [_at(p, (k + rng.random()) / n) for k in strata]
        for params, value in zip(sets, values, strict=True):
            params[name] = value
    return sets


def _at(p: SearchParam, u: float) -> float | int:
    """The value a fraction `u` (0..1) of the way along a numeric parameter's range."""
    if p.type == "categorical":
        raise ValueError("a categorical parameter has no range")
    if p.type == "log_float":
        return math.exp(math.log(p.low) + u * (math.log(p.high) - math.log(p.low)))
    step = p.step
    if step is None:
        return p.low + u * (p.high - p.low)
    count = int((p.high - p.low) // step) + 1  # grid points, both ends included
    value = p.low + min(int(u * count), count - 1) * step
    return value if p.type == "int" else float(value)


def show_params(params: Mapping[str, Any]) -> str:
    """`C=0.01, model=svm` in the given order, floats to 4 significant digits."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())


def _plain(params: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-friendly values (numpy scalars become Python numbers)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        out[key] = value.item() if hasattr(value, "item") else value
    return out
