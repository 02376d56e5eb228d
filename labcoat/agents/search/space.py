"""What the search brain's two proposal stages share: a finished trial, and where a fraction of
a parameter's range falls (the first batch's strata, the later batches' uniform draws)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labcoat.experiment import SearchParam


@dataclass(frozen=True)
class Trial:
    """A finished trial: its parameters and its graded value (None when grading failed)."""

    params: Mapping[str, Any]
    value: float | None


def ordinal(p: SearchParam) -> list[int | float] | None:
    """The choices of a categorical parameter that are three or more numbers (batch sizes,
    widths, depths), smallest first: ordered, so the search treats them as points along a
    range, not as strangers. None for any other parameter."""
    choices: list[object] = list(p.choices) if p.type == "categorical" else []
    nums = [c for c in choices
            if isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c)]
    if len(nums) < len(choices) or len({float(c) for c in nums}) < 3:
        return None
    return sorted(nums)


def ordinal_unit(order: Sequence[float], value: float) -> float:
    """Where `value` lies between the smallest and the largest of an `ordinal` parameter's
    choices (0..1), on a log scale when every choice is positive (32, 64 ... 512 evenly)."""
    scale = math.log if order[0] > 0 else float
    low, high, x = scale(order[0]), scale(order[-1]), float(value)
    if not math.isfinite(x) or (scale is math.log and x <= 0):
        return 0.5  # not a choice (the history holds only choices): the middle
    return (scale(x) - low) / (high - low)


def value_at(p: SearchParam, u: float) -> float | int:
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
