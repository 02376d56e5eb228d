"""What a run's model calls cost: in total, per role and per iteration (part of the fold)."""

from __future__ import annotations

from dataclasses import dataclass, field

from labcoat.log import events as ev


@dataclass(frozen=True, slots=True)
class Spend:
    """Model calls and what they cost. `usd` sums known prices only; see `unknown_cost_calls`."""

    calls: int = 0
    usd: float = 0.0
    unknown_cost_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def tokens(self) -> int:
        return (self.input_tokens + self.output_tokens
                + self.cache_read_tokens + self.cache_write_tokens)

    def add(self, call: ev.LlmCall) -> Spend:
        return self.plus(spend_delta(call))

    def plus(self, d: tuple[float, int, int, int, int, int]) -> Spend:
        """Add one call's (usd, unknown, input, output, cache_read, cache_write)."""
        return Spend(self.calls + 1, self.usd + d[0], self.unknown_cost_calls + d[1],
                     self.input_tokens + d[2], self.output_tokens + d[3],
                     self.cache_read_tokens + d[4], self.cache_write_tokens + d[5])


def spend_delta(call: ev.LlmCall) -> tuple[float, int, int, int, int, int]:
    """What one call adds to a `Spend`, computed once per call (the fold's hot path)."""
    u = call.usage
    return (call.cost_usd or 0.0, call.cost_usd is None, u.get("input_tokens", 0),
            u.get("output_tokens", 0), u.get("cache_read_tokens", 0),
            u.get("cache_write_tokens", 0))


NO_SPEND = Spend()
"""Nothing spent yet."""


@dataclass(frozen=True, slots=True)
class Cost:
    """Spend in total, per role and per iteration. `RunState.copy` copies the dicts."""

    total: Spend = Spend()
    by_role: dict[str, Spend] = field(default_factory=dict)
    by_iteration: dict[int, Spend] = field(default_factory=dict)

    def copy(self) -> Cost:
        return Cost(self.total, dict(self.by_role), dict(self.by_iteration))
