"""What the search brain's two proposal stages share: a finished trial, and where a fraction of
a parameter's range falls (the first batch's strata, the later batches' uniform draws)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labcoat.experiment import SearchParam


@dataclass(frozen=True)
class Trial:
    """A finished trial: its parameters and its graded value (None when grading failed)."""

    params: Mapping[str, Any]
    value: float | None


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
