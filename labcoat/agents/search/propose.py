"""The search brain's proposals over the experiment's `search_space`, batch by batch.

No state is kept between calls: every proposal is made from the trials the log records, with a
seed derived from (run seed, iteration). So a resumed run proposes exactly what an uninterrupted
one would, and the log stays the only source of truth.

Runs are short (a few iterations of a few trials), so the brain is built for small budgets. The
first batch, with nothing known yet, is a Latin hypercube: every parameter's range is cut into
as many strata as there are trials and each trial takes a different one (categorical choices as
distinct as the batch allows), where independent random draws often land two trials on the same
model or the same corner. Later batches choose by expected improvement under a Gaussian process
fitted to the graded trials and the baseline's grade (`labcoat.agents.search.gp`): Optuna's TPE,
univariate or not, did no better than random search over 6 trials, and its GP sampler needs
torch. The `random` brain, the floor the search brain must beat, draws with Optuna's
RandomSampler from a study rebuilt from the log. benchmarks/search_replay.py compares the two.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from labcoat.agents.search.space import Trial, ordinal, value_at

if TYPE_CHECKING:
    import optuna

    from labcoat.experiment import SearchParam

Sampler = Literal["search", "random"]
"""`search`: the search brain; `random`: uniform draws, the floor the search brain must beat."""
SAMPLER_NAMES: dict[str, str] = {"search": "expected-improvement", "random": "random"}


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
    """The Optuna sampler of the `random` brain (the search brain's proposals need none)."""
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def rebuild_study(space: Mapping[str, SearchParam], history: Sequence[Trial], *,
                  direction: str, seed: int, sampler: Sampler = "random") -> optuna.Study:
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
            seed: int, iteration: int, n: int, salt: str = "", sampler: Sampler = "search",
            baseline: float | None = None,
            baseline_params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """`n` new parameter sets, deterministic given the history, seed, iteration and salt.
    `baseline`: the baseline's grade, what a trial must beat to gain anything (None: not
    graded yet); `baseline_params`: the values the baseline ran with, when the space declares
    them (the baseline is then one more trial)."""
    if not space or n <= 0:
        return []
    derived = derived_seed(seed, iteration, salt)
    if sampler == "random":
        return _random(space, history, direction=direction, seed=derived, n=n)
    dists = distributions(space)
    usable = [t for t in history if _fits(t.params, dists)]
    if baseline_params is not None and baseline is not None:
        usable.append(Trial(baseline_params, baseline))  # defaults may lie outside a range
    if not usable:
        return initial_design(space, n, seed=derived)
    from labcoat.agents.search.gp import propose_gp

    return [_plain(p) for p in propose_gp(space, usable, direction=direction,
                                          baseline=baseline, seed=derived, n=n)]


def _random(space: Mapping[str, SearchParam], history: Sequence[Trial], *, direction: str,
            seed: int, n: int) -> list[dict[str, Any]]:
    study = rebuild_study(space, history, direction=direction, seed=seed)
    dists = distributions(space)
    return [_plain(study.ask(dists).params) for _ in range(n)]


def initial_design(space: Mapping[str, SearchParam], n: int, *,
                   seed: int) -> list[dict[str, Any]]:
    """`n` parameter sets that spread over the space (a Latin hypercube): each numeric
    parameter's range, on its own scale (log for `log_float`), is cut into `n` equal strata and
    every set takes a different one; categorical choices are dealt out in shuffled rounds, so
    the sets differ in each parameter as far as it allows; numeric choices (`ordinal`) are
    cut into strata in their order like a range. Deterministic given `seed`."""
    rng = random.Random(seed)
    sets: list[dict[str, Any]] = [{} for _ in range(n)]
    for name, p in space.items():
        order = ordinal(p)
        values: list[Any]
        if order is not None:
            strata = rng.sample(range(n), n)
            values = [order[min(int((k + rng.random()) / n * len(order)), len(order) - 1)]
                      for k in strata]
        elif p.type == "categorical":
            rounds = [rng.sample(range(len(p.choices)), len(p.choices))
                      for _ in range(-(-n // len(p.choices)))]
            values = [p.choices[i] for i in [i for r in rounds for i in r][:n]]
        else:
            strata = rng.sample(range(n), n)
            values = [value_at(p, (k + rng.random()) / n) for k in strata]
        for params, value in zip(sets, values, strict=True):
            params[name] = value
    return sets


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
