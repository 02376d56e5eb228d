"""Token and dollar budget shared by every model of a run.

Checked *before* a call: a call whose worst case (estimated prompt plus `max_tokens` of output)
would pass a limit never starts, and `BudgetExhausted` says which limit and how to go on.
Calls to a model without a known price count their tokens but not dollars: the dollar limit
cannot cover them, and `unpriced_calls` says how many there were.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from labcoat.agents.llm.models.pricing import ModelPrice
from labcoat.agents.model import Message, ToolSpec, Usage
from labcoat.errors import BudgetExhausted


def estimate_prompt_tokens(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> int:
    """A cheap upper-ish estimate: ~4 characters per token of the serialized request."""
    text = json.dumps([m.model_dump(mode="json") for m in messages])
    text += json.dumps([t.model_dump(mode="json") for t in tools])
    return len(text) // 4 + 1


class Budget:
    """Mutable run-wide counters and limits. Start `spent_*` from the log on resume."""

    def __init__(
        self,
        *,
        max_usd: float | None = None,
        max_tokens: int | None = None,
        spent_usd: float = 0.0,
        spent_tokens: int = 0,
    ) -> None:
        self.max_usd = max_usd
        self.max_tokens = max_tokens
        self.spent_usd = spent_usd
        self.spent_tokens = spent_tokens
        self.unpriced_calls = 0

    def check(self, est_tokens: int, price: ModelPrice | None, max_output: int) -> None:
        """Raise `BudgetExhausted` when a call of this size could pass a limit."""
        worst = Usage(input_tokens=est_tokens, output_tokens=max_output)
        if self.max_tokens is not None and self.spent_tokens + worst.total_tokens > self.max_tokens:
            raise BudgetExhausted(
                f"token budget: {self.spent_tokens} of {self.max_tokens} tokens spent and the next "
                f"call may use up to {worst.total_tokens}. Resume with a higher --budget-tokens.",
                kind="tokens", limit=self.max_tokens, spent=self.spent_tokens,
            )
        if self.max_usd is not None and price is not None:
            cost = price.cost(worst)
            if self.spent_usd + cost > self.max_usd:
                raise BudgetExhausted(
                    f"dollar budget: ${self.spent_usd:.4f} of ${self.max_usd:.2f} spent and the "
                    f"next call may cost up to ${cost:.4f}. Resume with a higher --budget-usd.",
                    kind="usd", limit=self.max_usd, spent=round(self.spent_usd, 6),
                )

    def charge(self, usage: Usage, cost_usd: float | None) -> None:
        self.spent_tokens += usage.total_tokens
        if cost_usd is None:
            self.unpriced_calls += 1
        else:
            self.spent_usd += cost_usd
