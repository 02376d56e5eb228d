"""Does a claim hold? The reproducer's rule: a pure function of the seeds that graded.

For a claim of value `v` with tolerance `t` (`rel_tolerance` times `|v|` when given that way),
the values measured at the seeds that graded give a mean `m`, a sample standard deviation `s`
and the noise on that mean `h = k * s / sqrt(n)`, where `k` is the critic's `noise_sigmas` (2 by
default, about a 95 % interval):

    reproduced       the whole interval [m - h, m + h] lies inside the band [v - t, v + t]
    not_reproduced   the whole interval lies outside the band: the measurement misses the claim
                     by more than the tolerance and the noise together
    inconclusive     the interval straddles an edge of the band (more seeds would tell), or
                     fewer than two seeds graded (the noise cannot be told)

It is equivalence testing's two one-sided tests, with the critic's noise rule. A claim that the
run measures exactly (the same value at every seed, `s = 0`) is reproduced or not by the band
alone.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from labcoat.experiment.spec import ClaimSpec

ClaimVerdictName = Literal["reproduced", "not_reproduced", "inconclusive"]
"""What the reproducer says of one claim."""


class ClaimVerdict(BaseModel):
    """One claim checked: what was claimed, what the seeds measured, and the verdict."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    claim: int = Field(ge=0)
    """Position of the claim in experiment.yaml's `claims:` (0-based)."""
    metric: str
    value: float
    """The claimed value."""
    tolerance: float
    """The tolerance in the metric's units (`rel_tolerance` turned into one)."""
    source: str = ""
    verdict: ClaimVerdictName
    mean: float | None = None
    """The mean over the seeds that graded (None when none did)."""
    std: float | None = None
    """Their sample standard deviation (None below two seeds)."""
    values: dict[str, float] = Field(default_factory=dict)
    """The measured value by seed (as a string, like a critique's `metrics_by_seed`)."""
    reason: str = ""


def check_claims(claims: Sequence[ClaimSpec], metrics_by_seed: Mapping[int, Mapping[str, float]],
                 *, noise_sigmas: float) -> list[ClaimVerdict]:
    """A verdict for each claim, from evaluate's metrics at each seed that graded."""
    out = []
    for index, claim in enumerate(claims):
        values = {seed: m[claim.metric] for seed, m in metrics_by_seed.items()
                  if claim.metric in m and math.isfinite(m[claim.metric])}
        out.append(check_claim(index, claim, values, noise_sigmas=noise_sigmas))
    return out


def check_claim(index: int, claim: ClaimSpec, values: Mapping[int, float], *,
                noise_sigmas: float) -> ClaimVerdict:
    """The verdict on one claim from its metric's value at each seed that graded."""
    seen = {str(seed): v for seed, v in sorted(values.items())}
    base = ClaimVerdict(claim=index, metric=claim.metric, value=claim.value,
                        tolerance=claim.band, source=claim.source, verdict="inconclusive",
                        values=seen)
    if len(seen) < 2:
        mean = next(iter(seen.values()), None)
        return base.model_copy(update={"mean": mean, "reason": (
            f"only {len(seen)} seed(s) graded {claim.metric}; the noise cannot be told from "
            "fewer than two")})
    mean, std = statistics.fmean(seen.values()), statistics.stdev(seen.values())
    noise = noise_sigmas * std / math.sqrt(len(seen))
    verdict = _verdict(mean, noise, claim.value, claim.band)
    return base.model_copy(update={"verdict": verdict, "mean": mean, "std": std,
                                   "reason": _reason(claim, verdict, mean, std, len(seen))})


def _verdict(mean: float, noise: float, value: float, band: float) -> ClaimVerdictName:
    low, high = mean - noise, mean + noise
    if low >= value - band and high <= value + band:
        return "reproduced"
    if high < value - band or low > value + band:
        return "not_reproduced"
    return "inconclusive"


def _reason(claim: ClaimSpec, verdict: ClaimVerdictName, mean: float, std: float,
            n: int) -> str:
    measured = f"{claim.metric} {mean:.4g} ± {std:.2g} over {n} seeds"
    claimed = f"the claimed {claim.value:.4g} ± {claim.band:.2g}"
    where = f" ({claim.source})" if claim.source else ""
    if verdict == "reproduced":
        return f"{measured} agrees with {claimed}{where}"
    off = mean - claim.value
    if verdict == "not_reproduced":
        return (f"{measured} misses {claimed}{where} by {off:+.4g}, beyond the tolerance and "
                "the seed noise")
    return (f"{measured} is {off:+.4g} from {claimed}{where}: the seed noise straddles the "
            "edge of the tolerance; more seeds (critic.seeds) would tell")
