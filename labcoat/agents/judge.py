"""The critic's judgement: is a gain over the reference bigger than the seed noise?

`judge(target, scores_by_seed, reference=..., spec=...)` is a pure function of the scores, used by
the search brain's critic and shown to the LLM critic as its analysis.
"""

from __future__ import annotations

import statistics

from labcoat.agents.role import Critique, Subtask, Verdict
from labcoat.experiment import ExperimentSpec, gain


def judge(target: str, scores: dict[str, float], *, reference: float | None,
          spec: ExperimentSpec) -> Critique:
    """Reproducible when the mean gain over `reference` exceeds `noise_sigmas` seed std devs."""
    values = list(scores.values())
    if len(values) < 2:
        return Critique(target=target, verdict="suspicious", metrics_by_seed=scores,
                        reason=f"only {len(values)} seed(s) could be graded; cannot tell noise")
    mean, std = statistics.fmean(values), statistics.stdev(values)
    if reference is None:
        reason = f"{spec.metric.name} {mean:.4g} ± {std:.2g} over {len(values)} seeds"
        return Critique(target=target, verdict="ok", metrics_by_seed=scores, mean=mean, std=std,
                        reason=reason)
    gained = gain(mean, reference, spec.metric.direction)
    noise = spec.critic.noise_sigmas * std
    verdict: Verdict = "reproducible" if gained > noise and gained > 0 else "not_reproducible"
    reason = (f"mean {spec.metric.name} {mean:.4g} ± {std:.2g} over {len(values)} seeds vs "
              f"reference {reference:.4g}: {compared(gained, noise)}")
    return Critique(target=target, verdict=verdict, reason=reason, metrics_by_seed=scores,
                    mean=mean, std=std)


def compared(gained: float, noise: float) -> str:
    """A gain or a loss against the noise, in words: a worse result is called worse."""
    if gained > 0:
        return f"gain {gained:.4g} {'exceeds' if gained > noise else 'is within'} the noise " \
               f"({noise:.2g})"
    if gained == 0:
        return f"no gain (the noise is {noise:.2g})"
    where = "well beyond" if -gained > noise else "within"
    return f"worse: a loss of {-gained:.4g}, {where} the noise ({noise:.2g})"


def reference_of(subtask: Subtask) -> float | None:
    """The metric a reviewed result must beat, as the plan recorded it (None: no reference)."""
    value = subtask.params.get("reference")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
