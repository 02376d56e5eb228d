"""What connects the LLM brain to a run: which model each role gets, the budget and replay taken
from the log, and the model layer's events translated into log events.

Which model a role gets: `--role-model ROLE=SPEC` > experiment.yaml `models:` > the role file's
`model:` > `--model`. Every model of the run shares one `Budget` (limits from the run config,
spending counted from the log's non-replayed `llm_call` events) and one replay index (the
logged calls, in log order: `Journal.logged_replies()`, which reads each reply from the log when
it replays), so a resumed run neither overspends nor buys a logged answer twice.

The model layer emits `llm_call` / `llm_error` with its own field names; `to_event` maps them
onto the log's event models (`reply` -> `response`; the running totals are left out: the fold
recomputes them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, cast

from labcoat.agents.llm.models import Budget
from labcoat.agents.llm.models.factory import parse_role_models
from labcoat.agents.model import Model
from labcoat.agents.role import Emit
from labcoat.experiment import Experiment
from labcoat.log import EventBase, Journal, RunState
from labcoat.log.events import LlmCall

MODEL_EVENTS = frozenset({"llm_call", "llm_error"})


# -- which model each role gets ----------------------------------------------------------------

def role_specs(config: Mapping[str, Any], brain: str, exp: Experiment,
               file_models: Mapping[str, str] | None = None) -> dict[str, str]:
    """role -> model spec for every role that does not simply use `brain` (`--model`)."""
    out = dict(file_models or {})
    out.update(exp.spec.models)
    out.update(parse_role_models(config.get("role_models") or []))
    return {role: spec for role, spec in out.items() if spec != brain}


# -- budget and replay from the log ------------------------------------------------------------

def budget_of(state: RunState) -> Budget:
    """The run's limits (resume overrides included) and what the log says was spent."""
    cfg, spent = state.config, state.cost.total
    return Budget(max_usd=cfg.get("budget_usd"), max_tokens=cfg.get("budget_tokens"),
                  spent_usd=spent.usd, spent_tokens=spent.tokens)


def replay_of(events: Iterable[EventBase]) -> dict[str, list[dict[str, Any]]]:
    """request hash -> logged replies, in log order (only calls that were really made), from
    events at hand. A run takes `Journal.logged_replies()`, which holds no reply in memory."""
    index: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        if isinstance(e, LlmCall) and not e.replayed:
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


def journal_emit(journal: Journal, iteration: int | None = None) -> Emit:
    """Append to the journal at `iteration` (default: the run's current one)."""

    def emit(type_: str, fields: Mapping[str, Any]) -> None:
        journal.append(type_, iteration=iteration, **to_event(type_, fields))

    return emit


class Rebindable(Protocol):
    """A model that can be tagged with a role and an event sink (`ManagedModel`, and the
    bridged model a role running in its own thread sees)."""

    def with_role(self, role: str, emit: Emit | None = None) -> Model: ...


def bind(model: Model, role: str, emit: Emit, subtask_id: str | None = None) -> Model:
    """The role's model with its events going to `emit` (a subtask's context)."""
    if hasattr(model, "with_role"):
        return cast(Rebindable, model).with_role(role, emit=adapt(emit, subtask_id))
    return model


__all__ = ["adapt", "bind", "budget_of", "journal_emit", "replay_of", "role_specs", "to_event"]
