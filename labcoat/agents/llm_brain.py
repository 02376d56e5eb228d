"""The LLM brain: per-role models, one shared budget, replay from the log, events into the journal.

    manager, models = build_llm_brain(state, exp, registry, roles, journal)
    models("critic")   # the critic's ManagedModel (tagged with its role), or None

Which model a role gets: `--role-model ROLE=SPEC` > experiment.yaml `models:` > the role file's
`model:` > `--model`. Every model of the run shares one `Budget` (limits from the run config,
spending counted from the log's non-replayed `llm_call` events) and one replay index (the
logged calls, in log order), so a resumed run neither overspends nor buys a logged answer twice.

The model layer emits `llm_call` / `llm_error` with its own field names; `to_event` maps them
onto the log's event models (`reply` -> `response`; the running totals are left out: the fold
recomputes them).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from labcoat.agents.models import Budget, ManagedModel, build_model, parse_model_spec
from labcoat.agents.models.factory import parse_role_models
from labcoat.errors import ConfigError

Emit = Callable[[str, Mapping[str, Any]], None]
MODEL_EVENTS = frozenset({"llm_call", "llm_error"})
_KEY_ENV = {"anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY"}
_URL_ENV = {"anthropic": "ANTHROPIC_BASE_URL", "openai": "OPENAI_BASE_URL"}


# -- which model each role gets ----------------------------------------------------------------

def role_specs(config: Mapping[str, Any], brain: str, exp: Any,
               file_models: Mapping[str, str] | None = None) -> dict[str, str]:
    """role -> model spec for every role that does not simply use `brain` (`--model`)."""
    out = dict(file_models or {})
    out.update(exp.spec.models)
    out.update(parse_role_models(config.get("role_models") or []))
    return {role: spec for role, spec in out.items() if spec != brain}


def file_role_models(registry: Any, roles: Iterable[str]) -> dict[str, str]:
    """Model specs from role files' front matter (`model:`)."""
    out: dict[str, str] = {}
    for name in roles:
        try:
            spec = getattr(registry.get(name), "model", None)
        except ConfigError:
            continue
        if isinstance(spec, str) and ":" in spec:
            out[name] = spec
    return out


def base_url_for(spec: str, base_url: str | None) -> str | None:
    """`--base-url` points `openai:` models at a compatible server; others use their env."""
    provider, _ = parse_model_spec(spec)
    return base_url if provider == "openai" else None


def check_keys(specs: Iterable[str], base_url: str | None) -> None:
    """Fail before the run starts when a spec is malformed or its provider has no key."""
    for spec in sorted(set(specs)):
        provider, _ = parse_model_spec(spec)
        url = base_url_for(spec, base_url) or os.environ.get(_URL_ENV[provider])
        if os.environ.get(_KEY_ENV[provider]) or (provider == "openai" and url):
            continue
        raise ConfigError(
            f"{_KEY_ENV[provider]} is not set, and {spec} needs it: export it, point "
            "--base-url at a local OpenAI-compatible server, or run with `--model search`")


# -- budget and replay from the log ------------------------------------------------------------

def budget_of(state: Any) -> Budget:
    """The run's limits (resume overrides included) and what the log says was spent."""
    cfg, spent = state.config, state.cost.total
    return Budget(max_usd=cfg.get("budget_usd"), max_tokens=cfg.get("budget_tokens"),
                  spent_usd=spent.usd, spent_tokens=spent.tokens)


def replay_of(events: Iterable[Any]) -> dict[str, list[dict[str, Any]]]:
    """request hash -> logged replies, in log order (only calls that were really made)."""
    index: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        if e.type == "llm_call" and not e.replayed:
            index.setdefault(e.request_hash, []).append(dict(e.response))
    return index


# -- events ------------------------------------------------------------------------------------

def to_event(type_: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The model layer's event fields as the log's event fields."""
    out = dict(fields)
    if type_ == "llm_call" and "reply" in out:  # idempotent: adapters may stack
        out["response"] = out.pop("reply")
        out.pop("spent_usd", None)
        out.pop("spent_tokens", None)
    if type_ in MODEL_EVENTS and not out.get("role"):
        out["role"] = "?"
    return out


def adapt(emit: Emit, subtask_id: str | None = None) -> Emit:
    """Wrap a `RoleContext.emit`-shaped callable: model fields mapped, subtask id filled in."""

    def emit_event(type_: str, fields: Mapping[str, Any]) -> None:
        out = to_event(type_, fields)
        if subtask_id is not None and type_ in MODEL_EVENTS | {"tool_call"}:
            out.setdefault("subtask_id", subtask_id)
        emit(type_, out)

    return emit_event


def journal_emit(journal: Any, iteration: int | None = None) -> Emit:
    """Append to the journal at `iteration` (default: the run's current one)."""

    def emit(type_: str, fields: Mapping[str, Any]) -> None:
        journal.append(type_, iteration=iteration, **to_event(type_, fields))

    return emit


def bind(model: Any, role: str, emit: Emit, subtask_id: str | None = None) -> Any:
    """The role's model with its events going to `emit` (a subtask's context)."""
    with_role = getattr(model, "with_role", None)
    return model if with_role is None else with_role(role, emit=adapt(emit, subtask_id))


# -- the brain ---------------------------------------------------------------------------------

class RunModels:
    """One `ManagedModel` per distinct spec, sharing budget and replay; `models(role)`."""

    def __init__(self, brain: str, specs: Mapping[str, str], *, base_url: str | None,
                 budget: Budget, replay: Mapping[str, list[dict[str, Any]]], emit: Emit) -> None:
        self.brain, self.specs = brain, dict(specs)
        self.budget = budget
        self._models: dict[str, ManagedModel] = {}
        for spec in {brain, *self.specs.values()}:
            self._models[spec] = build_model(spec, base_url=base_url_for(spec, base_url),
                                             budget=budget, replay=replay, emit=emit)

    def __call__(self, role: str) -> ManagedModel:
        return self._models[self.specs.get(role, self.brain)].with_role(role)

    async def aclose(self) -> None:
        for model in self._models.values():
            await model.aclose()


def build_llm_brain(state: Any, exp: Any, registry: Any, roles: list[str],
                    journal: Any) -> tuple[Any, RunModels]:
    """The LLM manager and the per-role model lookup for a run whose brain is a model spec."""
    from labcoat.agents.llm_manager import LlmManager

    cfg = state.config
    specs = role_specs(cfg, state.brain, exp, file_role_models(registry, roles))
    check_keys([state.brain, *specs.values()], cfg.get("base_url"))
    models = RunModels(state.brain, specs, base_url=cfg.get("base_url"), budget=budget_of(state),
                       replay=replay_of(journal.events), emit=journal_emit(journal))
    manager = LlmManager(exp, roles, models=models, journal=journal,
                         descriptions=registry.describe(roles),
                         max_subtasks=int(cfg.get("max_subtasks") or cfg.get("parallel") or 1))
    return manager, models


__all__ = ["RunModels", "adapt", "bind", "budget_of", "build_llm_brain", "check_keys",
           "replay_of", "role_specs", "to_event"]
