"""Which of two metric values is better: the one place that knows what `direction` means."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

Direction = Literal["maximize", "minimize"]


def sign(direction: str) -> float:
    """+1 when bigger is better, -1 when smaller is better: `sign * value` is then maximized."""
    return -1.0 if direction == "minimize" else 1.0


def beats(a: float, b: float | None, direction: str) -> bool:
    """True when `a` is strictly better than `b`; anything beats None."""
    return b is None or sign(direction) * a > sign(direction) * b


def best_value(values: Iterable[float], direction: str) -> float | None:
    """The best of `values` (the first of equals), or None when there are none."""
    best: float | None = None
    for value in values:
        if beats(value, best, direction):
            best = value
    return best


def gain(value: float, reference: float, direction: str) -> float:
    """How much better `value` is than `reference` (negative when it is worse)."""
    return sign(direction) * (value - reference)
