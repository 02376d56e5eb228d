"""The claims of experiment.yaml as the fold keeps them: `RunState.claims`, claim index ->
`ClaimCheck`, the latest `claim_checked` of each. The handler is part of the pure fold in
`labcoat.log.state` (no I/O, no clock); `labcoat.log.reproduction` reads the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from labcoat.log import events as ev


class HasClaims(Protocol):
    """The part of `RunState` the handler writes (the state imports this module)."""

    claims: dict[int, ClaimCheck]


@dataclass(frozen=True, slots=True)
class ClaimCheck:
    """One claim of experiment.yaml and, once checked, the reproducer's verdict on it."""

    claim: int
    """Position in `claims:` (0-based)."""
    metric: str
    value: float
    """The claimed value."""
    tolerance: float
    """In the metric's units."""
    source: str = ""
    verdict: str = "unchecked"
    """reproduced, not_reproduced, inconclusive; `unchecked` until the reproducer checked it."""
    mean: float | None = None
    std: float | None = None
    values: dict[str, float] = field(default_factory=dict)
    """The measured value by seed."""
    reason: str = ""
    commit: str | None = None
    """The commit graded."""
    subtask: str | None = None
    """The reproducer subtask that checked it."""
    iteration: int = 0

    @property
    def seeds(self) -> list[int]:
        return sorted(int(s) for s in self.values)


def claim_checked(s: HasClaims, e: ev.ClaimChecked) -> None:
    """Fold one `claim_checked`: the latest verdict on a claim replaces any earlier one."""
    s.claims = {**s.claims, e.claim: ClaimCheck(
        claim=e.claim, metric=e.metric, value=e.value, tolerance=e.tolerance, source=e.source,
        verdict=e.verdict, mean=e.mean, std=e.std, values=dict(e.values), reason=e.reason,
        commit=e.commit, subtask=e.subtask_id, iteration=e.iteration)}


HANDLERS: dict[str, Callable[[HasClaims, Any], None]] = {"claim_checked": claim_checked}
"""The fold's handler for `claim_checked`."""
