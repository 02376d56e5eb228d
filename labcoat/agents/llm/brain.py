"""The LLM brain: the LLM manager plus one model per role, sharing a budget and the replay log.

    manager, models = build_llm_brain(state, exp, journal, roles=roles,
                                      descriptions=registry.describe(roles),
                                      file_models=role_models(registry, roles))
    models("critic")   # the critic's ManagedModel, tagged with its role
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from labcoat.agents.llm.manager import LlmManager
from labcoat.agents.llm.models import Budget, ManagedModel, build_model
from labcoat.agents.llm.providers import base_url_for, check_keys
from labcoat.agents.llm.wiring import budget_of, journal_emit, role_specs
from labcoat.agents.role import Emit
from labcoat.experiment import Experiment
from labcoat.log import Journal, RunState


class RunModels:
    """One `ManagedModel` per distinct spec, sharing budget and replay; `models(role)`."""

    def __init__(self, brain: str, specs: Mapping[str, str], *, base_url: str | None,
                 budget: Budget, replay: Mapping[str, Sequence[Mapping[str, Any]]],
                 emit: Emit) -> None:
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


def build_llm_brain(state: RunState, exp: Experiment, journal: Journal, *, roles: list[str],
                    descriptions: Mapping[str, str], file_models: Mapping[str, str],
                    ) -> tuple[LlmManager, RunModels]:
    """The LLM manager and the per-role model lookup for a run whose brain is a model spec.
    `descriptions` is the manager's menu; `file_models` the role files' `model:` specs."""
    cfg = state.config
    specs = role_specs(cfg, state.brain, exp, file_models)
    check_keys([state.brain, *specs.values()], cfg.get("base_url"))
    # The replies stay in the log: each is read back when a resumed call replays it.
    models = RunModels(state.brain, specs, base_url=cfg.get("base_url"), budget=budget_of(state),
                       replay=journal.logged_replies(), emit=journal_emit(journal))
    manager = LlmManager(exp, roles, models=models, journal=journal, descriptions=descriptions,
                         max_subtasks=int(cfg.get("max_subtasks") or cfg.get("parallel") or 1))
    return manager, models


__all__ = ["RunModels", "build_llm_brain"]
