"""The approval gate: which subtasks of a new plan wait for a person (`--approve`).

    --approve plans            every subtask of every plan (work and review alike) waits
    --approve spend-over USD   a subtask waits when its worst-case model spend exceeds USD

The worst case of a subtask is what its role's tool loop may spend within its limits
(`LoopLimits`, with the run's `limits` over the defaults): `max_tokens` of input and
`max_turns x max_output_tokens` of output (at most `max_tokens`), at the role's model's prices
(input at the dearest of its input and cache rates). A role without a model (the search brain)
spends nothing; a model without a known price (a local server) cannot be estimated, so it is
never held by spend (`--approve plans` holds it). The decision is made once, when the plan is
recorded, and written into `plan_proposed` (`awaiting`, `gate`, `worst_usd`): a resumed run
reads it, never recomputes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from labcoat.agents.llm.models.pricing import ModelPrice
from labcoat.agents.llm.toolloop import LoopLimits
from labcoat.agents.model import Model
from labcoat.agents.role import Subtask


def worst_case_usd(price: ModelPrice, limits: LoopLimits) -> float:
    """Dollars a role's loop may spend at most within `limits` at `price`."""
    output = min(limits.max_tokens, limits.max_turns * limits.max_output_tokens)
    input_rate = max(price.input, price.cache_write, price.cache_read)
    return (limits.max_tokens * input_rate + output * price.output) / 1_000_000


def limits_of(config: Mapping[str, Any]) -> LoopLimits:
    """The loop limits a role gets from the run config (`limits`) over the defaults."""
    given = dict(config.get("limits") or {})
    return LoopLimits(**{k: v for k, v in given.items() if k in LoopLimits.model_fields})


def price_of(model: Model | None) -> ModelPrice | None:
    price = getattr(model, "price", None)
    return price if isinstance(price, ModelPrice) else None


def held(subtasks: Sequence[Subtask], config: Mapping[str, Any],
         model_of: Callable[[str], Model | None]) -> dict[str, Any]:
    """The `plan_proposed` fields that say which of `subtasks` wait, and why ({} without a
    gate: the plan starts at once)."""
    over = config.get("approve_spend_over_usd")
    if not config.get("approve_plans") and over is None:
        return {}
    limits = limits_of(config)
    worst = {}
    for sub in subtasks:
        price = price_of(model_of(sub.role))
        if price is not None:
            worst[sub.id] = round(worst_case_usd(price, limits), 6)
    if config.get("approve_plans"):
        return {"awaiting": [s.id for s in subtasks], "gate": "plans", "worst_usd": worst}
    dear = [s.id for s in subtasks if worst.get(s.id, 0.0) > float(over or 0.0)]
    return {"awaiting": dear, "gate": "spend", "worst_usd": worst} if dear else \
        {"worst_usd": worst}
