"""The search brain's proposals: Optuna (seeded TPE) over the experiment's `search_space`.

No study is kept between calls: every proposal rebuilds the study from the trials the log
records, with a sampler seeded from (run seed, iteration). So a resumed run proposes exactly what
an uninterrupted one would, and the log stays the only source of truth.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import optuna

    from labcoat.experiment import SearchParam

STARTUP_TRIALS = 2
"""Random trials before TPE models the space. Small because runs are short: until then the
search brain proposes exactly what random search does (3 iterations of 2 trials with 4 would
leave TPE only the last 2; benchmarks/research_quality.py measures the difference)."""
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
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS,
                                          multivariate=True)


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
    study = rebuild_study(space, history, direction=direction,
                          seed=derived_seed(seed, iteration, salt), sampler=sampler)
    dists = distributions(space)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TPE warns about independent sampling on some spaces
        trials = [study.ask(dists) for _ in range(n)]
    return [_plain(t.params) for t in trials]


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
