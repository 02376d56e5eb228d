"""The search brain's later batches: expected improvement under a Gaussian process.

After the first batch a run knows a few graded trials and its baseline's grade (and, when
every parameter declares its `default`, where the baseline lies: one more trial). A Gaussian
process over the search space (each numeric parameter as a fraction of its range, on its own
scale; each categorical one as one-hot, but a list of numbers, such as batch sizes, as where a
choice lies between its smallest and largest) says, for a new point, what grade to expect and how
sure that is; expected improvement over the best grade so far (the baseline's included: a
trial that does not beat it gains nothing) weighs the two. Four choices make it hold up with
2 to 6 trials, measured by benchmarks/search_replay.py:

- half the kernel is a sum of one kernel per parameter: what one parameter does is taken to
  hold whatever the others are, so a point one change away from a good one stays close to it
  (a one-hot change alone would make it a stranger);

- grades enter as normal scores of their ranks (an outlier such as a chance-level model does
  not flatten the rest), and every score below the median counts as the median: one bad trial
  says little about its neighbours (a narrow good region, a dead end of a range), a good one
  says much;
- the next point is the best of a few dozen uniform draws (a categorical choice no trial has
  tried yet is imposed on them), not the maximum over the whole space: that maximum sits in a
  corner, where the uncertainty is largest and dead ends usually are;
- a batch of several points is chosen one at a time, each new point entered with the grade the
  process expects of it (the "kriging believer"), so the batch spreads out.

Deterministic given its inputs and `seed`: a resumed run proposes what it would have.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from labcoat.agents.search.space import Trial, ordinal, ordinal_unit, value_at

if TYPE_CHECKING:
    from labcoat.experiment import SearchParam

LENGTHSCALE = 0.35
"""Of the Matern kernel, in fractions of a range (a categorical change is a distance of 1.4)."""
CANDIDATES = 30
"""Uniform draws the next point is chosen from."""
ADDITIVE = 0.5
"""The share of the kernel that is a sum over parameters (`kernel`)."""
JITTER = 1e-6
"""Added to the kernel's diagonal: grades are taken as exact, the solve must stay stable."""
Params = dict[str, Any]


def propose_gp(space: Mapping[str, SearchParam], history: Sequence[Trial], *, direction: str,
               baseline: float | None, seed: int, n: int) -> list[Params]:
    """`n` new points, chosen one at a time by expected improvement; `history` holds at
    least one trial of this `space`, `baseline` is the baseline's grade (None: unknown)."""
    rng = random.Random(seed)
    sign = -1.0 if direction == "minimize" else 1.0
    x = [encode(space, t.params) for t in history]
    y, best = targets([t.value for t in history], baseline, sign)
    chosen: list[Params] = []
    for _ in range(n):
        pool = candidates(space, [*(t.params for t in history), *chosen], rng)
        posterior = Posterior(np.array(x), np.array(y), blocks_of(space))
        mean, sd = posterior.predict(np.array([encode(space, c) for c in pool]))
        pick = int(np.argmax(expected_improvement(mean, sd, best)))
        chosen.append(pool[pick])
        x.append(encode(space, pool[pick]))
        y.append(float(mean[pick]))  # the believer: as good as the process expects
    return chosen


def targets(values: Sequence[float | None], baseline: float | None,
            sign: float) -> tuple[list[float], float]:
    """The trials' normal scores (failed trials last; scores below the median raised to it)
    and the score to beat: the best trial's, or the baseline's when it is better."""
    ranked = [sign * v if v is not None else -math.inf for v in values]
    if baseline is not None:
        ranked.append(sign * baseline)
    scores = [max(s, 0.0) for s in normal_scores(ranked)]
    return scores[: len(values)], max(scores)


def normal_scores(values: Sequence[float]) -> list[float]:
    """Each value's rank (ties share the mean rank) as a standard normal quantile."""
    count = len(values)
    out = []
    for v in values:
        below = sum(1 for w in values if w < v)
        equal = sum(1 for w in values if w == v)
        out.append(NormalDist().inv_cdf((below + equal / 2) / count))
    return out


def candidates(space: Mapping[str, SearchParam], tried: Sequence[Mapping[str, Any]],
               rng: random.Random) -> list[Params]:
    """CANDIDATES uniform draws, each taking a categorical choice not tried yet where there is
    one (not for an ordinal one: its neighbours tell what an untried choice does)."""
    fresh = {name: [c for c in p.choices if _key(c) not in {_key(t[name]) for t in tried}]
             if ordinal(p) is None else [] for name, p in space.items() if p.type == "categorical"}
    pool = []
    for _ in range(CANDIDATES):
        point: Params = {}
        for name, p in space.items():
            if p.type == "categorical":
                point[name] = rng.choice(fresh[name] or p.choices)
            else:
                point[name] = value_at(p, rng.random())
        pool.append(point)
    return pool


def encode(space: Mapping[str, SearchParam], params: Mapping[str, Any]) -> list[float]:
    """A point as the process sees it: numbers as fractions of their ranges, choices one-hot
    (numeric choices, `ordinal`, as where they lie between the smallest and the largest)."""
    out: list[float] = []
    for name, p in space.items():
        order = ordinal(p)
        if order is not None:
            out.append(ordinal_unit(order, params[name]))
        elif p.type == "categorical":
            out += [1.0 if _key(c) == _key(params[name]) else 0.0 for c in p.choices]
        else:
            out.append(_unit(p, params[name]))
    return out


def _unit(p: SearchParam, value: float) -> float:
    """A number as a fraction of its parameter's range, on its own scale (0..1 inside it)."""
    if p.type == "categorical":
        raise ValueError("a categorical parameter has no range")
    if p.type == "log_float":
        return math.log(value / p.low) / math.log(p.high / p.low)
    return (value - p.low) / (p.high - p.low)


class Posterior:
    """A zero-mean, unit-variance Gaussian process conditioned on (x, y); `blocks` are the
    columns of each parameter (see `kernel`)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, blocks: Sequence[slice]) -> None:
        self.x, self.blocks = x, blocks
        self.chol = np.linalg.cholesky(kernel(x, x, blocks) + JITTER * np.eye(len(x)))
        self.alpha = np.linalg.solve(self.chol.T, np.linalg.solve(self.chol, y))

    def predict(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The mean and standard deviation at each point."""
        cross = kernel(points, self.x, self.blocks)
        v = np.linalg.solve(self.chol, cross.T)
        variance = np.clip(1.0 - (v * v).sum(axis=0), 1e-12, None)
        return cross @ self.alpha, np.sqrt(variance)


def kernel(a: np.ndarray, b: np.ndarray, blocks: Sequence[slice]) -> np.ndarray:
    """Half a Matern 5/2 over all parameters at once, half the mean of one per parameter: the
    second keeps a point that differs in one parameter close (what one parameter does tends
    to hold whatever the others are), the first lets them interact."""
    each = sum(matern(a[:, b_], b[:, b_]) for b_ in blocks) / len(blocks)
    out: np.ndarray = ADDITIVE * each + (1.0 - ADDITIVE) * matern(a, b)
    return out


def blocks_of(space: Mapping[str, SearchParam]) -> list[slice]:
    """The columns `encode` gives each parameter."""
    out, start = [], 0
    for p in space.values():
        width = len(p.choices) if p.type == "categorical" and ordinal(p) is None else 1
        out.append(slice(start, start + width))
        start += width
    return out


def matern(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d: np.ndarray = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1))
    d *= math.sqrt(5) / LENGTHSCALE
    out: np.ndarray = (1.0 + d + d * d / 3.0) * np.exp(-d)
    return out


def expected_improvement(mean: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
    z = (mean - best) / sd
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    out: np.ndarray = (mean - best) * cdf + sd * pdf
    return out


def _key(value: object) -> str:
    return json.dumps(value, sort_keys=True)
