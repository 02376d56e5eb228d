"""Dollar prices per million tokens, with cached input priced on its own.

A model that is not in the table (a local server, a new release) has cost None: *unknown*.
Never a silent $0: reports say "unknown" and the dollar budget cannot cover it.
Prices are list prices for the standard tier; pass `price=` to `build_model` to override.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from labcoat.agents.model import Usage


class ModelPrice(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float
    output: float
    cache_read: float
    """Input tokens read from the prompt cache."""
    cache_write: float
    """Input tokens written to the prompt cache (OpenAI: same as input)."""

    def cost(self, usage: Usage) -> float:
        per_token = (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_read_tokens * self.cache_read
            + usage.cache_write_tokens * self.cache_write
        )
        return per_token / 1_000_000


def _anthropic(inp: float, out: float) -> ModelPrice:
    # Anthropic: 5-minute cache writes cost 1.25x input, cache reads 0.1x input.
    return ModelPrice(input=inp, output=out, cache_read=inp * 0.1, cache_write=inp * 1.25)


def _openai(inp: float, out: float, cached: float) -> ModelPrice:
    return ModelPrice(input=inp, output=out, cache_read=cached, cache_write=inp)


PRICES: dict[str, ModelPrice] = {
    "anthropic:claude-opus-4-6": _anthropic(5.0, 25.0),
    "anthropic:claude-sonnet-4-6": _anthropic(3.0, 15.0),
    "anthropic:claude-opus-4-5": _anthropic(5.0, 25.0),
    "anthropic:claude-opus-4-1": _anthropic(15.0, 75.0),
    "anthropic:claude-opus-4": _anthropic(15.0, 75.0),
    "anthropic:claude-sonnet-4-5": _anthropic(3.0, 15.0),
    "anthropic:claude-sonnet-4": _anthropic(3.0, 15.0),
    "anthropic:claude-3-7-sonnet": _anthropic(3.0, 15.0),
    "anthropic:claude-haiku-4-5": _anthropic(1.0, 5.0),
    "anthropic:claude-3-5-haiku": _anthropic(0.8, 4.0),
    "openai:gpt-5": _openai(1.25, 10.0, 0.125),
    "openai:gpt-5-mini": _openai(0.25, 2.0, 0.025),
    "openai:gpt-5-nano": _openai(0.05, 0.4, 0.005),
    "openai:gpt-4.1": _openai(2.0, 8.0, 0.5),
    "openai:gpt-4.1-mini": _openai(0.4, 1.6, 0.1),
    "openai:gpt-4.1-nano": _openai(0.1, 0.4, 0.025),
    "openai:gpt-4o": _openai(2.5, 10.0, 1.25),
    "openai:gpt-4o-mini": _openai(0.15, 0.6, 0.075),
    "openai:o3": _openai(2.0, 8.0, 0.5),
    "openai:o4-mini": _openai(1.1, 4.4, 0.275),
}


def price_for(provider: str, model: str) -> ModelPrice | None:
    """The price of `provider:model`, matching dated variants (`claude-sonnet-4-5-20250929`).

    The longest table key that equals the name or prefixes it followed by `-` wins.
    """
    full = f"{provider}:{model}"
    hits = [k for k in PRICES if full == k or full.startswith(k + "-")]
    return PRICES[max(hits, key=len)] if hits else None


def cost_of(price: ModelPrice | None, usage: Usage) -> float | None:
    """Dollars for `usage`, or None when the price is unknown."""
    return None if price is None else price.cost(usage)
