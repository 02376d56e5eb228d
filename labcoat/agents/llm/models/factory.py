"""`build_model("anthropic:claude-sonnet-4-6")`: a spec string to a ready `ManagedModel`.

Keys come from `ANTHROPIC_API_KEY` / `OPENAI_API_KEY` (never from a file, never logged).
The base URL comes from the argument, else the SDK's own `ANTHROPIC_BASE_URL` /
`OPENAI_BASE_URL`. An OpenAI-compatible local server needs no key: a placeholder is sent.
The provider SDK is imported here, lazily, only for the spec that needs it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from labcoat.agents.llm.models.budget import Budget
from labcoat.agents.llm.models.pricing import ModelPrice, price_for
from labcoat.agents.llm.models.retry import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT_S
from labcoat.agents.llm.models.wrapper import Emit, ManagedModel
from labcoat.agents.llm.providers import PROVIDERS, parse_model_spec
from labcoat.agents.model import Model
from labcoat.errors import ConfigError

_LOCAL_KEY = "sk-local-no-key"


def parse_role_models(items: Iterable[str]) -> dict[str, str]:
    """`["critic=openai:gpt-4.1"]` (from `--role-model`) -> `{"critic": "openai:gpt-4.1"}`."""
    out: dict[str, str] = {}
    for item in items:
        role, sep, spec = item.partition("=")
        if not sep or not role.strip():
            raise ConfigError(
                f"--role-model {item!r}: expected ROLE=SPEC, e.g. critic=openai:gpt-4.1"
            )
        parse_model_spec(spec.strip())
        out[role.strip()] = spec.strip()
    return out


def _api_key(provider: str, base_url: str | None, api_key: str | None) -> str:
    key = api_key or os.environ.get(PROVIDERS[provider].key_env)
    if key:
        return key
    if PROVIDERS[provider].keyless_with_url and base_url:
        return _LOCAL_KEY  # local OpenAI-compatible servers ignore the key
    raise ConfigError(
        f"{PROVIDERS[provider].key_env} is not set: export it to use {provider} models, point "
        f"--base-url at a local server, or run with `--model search` (no LLM)"
    )


def build_api(
    spec: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> tuple[Model, str]:
    """The bare provider adapter for `spec` and the key it uses (for redaction)."""
    provider, model = parse_model_spec(spec)
    url = base_url or os.environ.get(PROVIDERS[provider].url_env) or None
    key = _api_key(provider, url, api_key)
    if provider == "anthropic":
        from labcoat.agents.llm.models.anthropic import AnthropicModel

        return AnthropicModel(model, api_key=key, base_url=url, max_retries=max_retries,
                              timeout_s=timeout_s), key
    from labcoat.agents.llm.models.openai import OpenAIModel

    param = "max_tokens" if url and "api.openai.com" not in url else "max_completion_tokens"
    return OpenAIModel(model, max_tokens_param=param, api_key=key, base_url=url,
                       max_retries=max_retries, timeout_s=timeout_s), key


def build_model(
    spec: str,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    emit: Emit | None = None,
    budget: Budget | None = None,
    replay: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    role: str | None = None,
    price: ModelPrice | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    reply_retry_wait_s: float = 1.0,
) -> ManagedModel:
    """A `ManagedModel` for `anthropic:MODEL` / `openai:MODEL`, priced from the table."""
    api, key = build_api(spec, base_url=base_url, api_key=api_key,
                         max_retries=max_retries, timeout_s=timeout_s)
    provider, model = parse_model_spec(spec)
    return ManagedModel(
        api, emit=emit, budget=budget, replay=replay, role=role,
        price=price or price_for(provider, model), reply_retries=max_retries,
        reply_retry_wait_s=reply_retry_wait_s, secrets=[key],
    )
