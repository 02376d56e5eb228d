"""The model providers labcoat speaks to: their key and base-URL variables and default models.

The one table that says which environment variable holds which provider's key. Import-light:
`labcoat doctor` and `labcoat run` read it before any SDK is imported.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from labcoat.errors import ConfigError


@dataclass(frozen=True)
class Provider:
    name: str
    key_env: str
    """Environment variable holding the API key."""
    url_env: str
    """The SDK's own base-URL variable."""
    default_model: str
    """The model spec used when only this provider's key is set."""
    keyless_with_url: bool = False
    """True when a compatible server at a base URL needs no key (OpenAI-compatible servers)."""


PROVIDERS: dict[str, Provider] = {
    "anthropic": Provider("anthropic", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL",
                          "anthropic:claude-sonnet-4-6"),
    "openai": Provider("openai", "OPENAI_API_KEY", "OPENAI_BASE_URL", "openai:gpt-4.1",
                       keyless_with_url=True),
}
KEY_ENVS = tuple(p.key_env for p in PROVIDERS.values())


def parse_model_spec(spec: str) -> tuple[str, str]:
    """`"openai:gpt-4o"` -> `("openai", "gpt-4o")`, or a ConfigError saying the accepted forms."""
    provider, sep, model = spec.partition(":")
    if not sep or provider not in PROVIDERS or not model:
        raise ConfigError(
            f"model spec {spec!r}: expected `anthropic:MODEL` or `openai:MODEL` "
            "(e.g. anthropic:claude-sonnet-4-6, openai:gpt-4.1), or `search` for no LLM"
        )
    return provider, model


def default_brain() -> str:
    """The default model of the first provider whose key is set, else `search` (no LLM)."""
    for provider in PROVIDERS.values():
        if os.environ.get(provider.key_env):
            return provider.default_model
    return "search"


def base_url_for(spec: str, base_url: str | None) -> str | None:
    """`--base-url` points `openai:` models at a compatible server; others use their env."""
    provider, _ = parse_model_spec(spec)
    return base_url if PROVIDERS[provider].keyless_with_url else None


def check_keys(specs: Iterable[str], base_url: str | None) -> None:
    """Fail before the run starts when a spec is malformed or its provider has no key."""
    for spec in sorted(set(specs)):
        provider = PROVIDERS[parse_model_spec(spec)[0]]
        url = base_url_for(spec, base_url) or os.environ.get(provider.url_env)
        if os.environ.get(provider.key_env) or (provider.keyless_with_url and url):
            continue
        raise ConfigError(
            f"{provider.key_env} is not set, and {spec} needs it: export it, point "
            "--base-url at a local OpenAI-compatible server, or run with `--model search`")
