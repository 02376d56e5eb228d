"""The async part of a run: the sandbox provider (this machine's Docker or a Ray cluster, see
`capacity.provider`), the brain, the graph, signals, the summary."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from labcoat.agents.manager import Manager
from labcoat.agents.model import Model
from labcoat.agents.registry import RoleRegistry, default_registry, role_models
from labcoat.experiment import Experiment
from labcoat.log import Journal, RunState
from labcoat.orchestrator import capacity
from labcoat.orchestrator.lab import Lab, no_model
from labcoat.views.progress import Progress
from labcoat.views.report import summarize
from labcoat.workspace import Workspace

SIGNALS = (signal.SIGINT, signal.SIGTERM)
ModelLookup = Callable[[str], Model | None]


async def run_session(run_dir: Path, journal: Journal, exp: Experiment) -> int:
    """Drive the run until it finishes, pauses or is interrupted; the exit code."""
    state = journal.state
    registry = default_registry(exp.dir)
    manager, models, close = build_brain(state, exp, registry, journal)
    progress = Progress(metric=exp.spec.metric.name,
                        max_iterations=state.config.get("max_iterations"))
    parallel = int(state.config.get("parallel", 1))
    try:
        async with capacity.provider(state.config, state.run_id, exp, parallel,
                                     journal.append) as provider:
            lab = Lab(run_dir=run_dir, journal=journal, experiment=exp,
                      workspace=Workspace(run_dir / "workspace"), provider=provider,
                      manager=manager, roles=registry, progress=progress, models=models)
            lab.sync_best()  # a stop right after a grade may have left labcoat/best behind
            with progress:
                code = await _drive(lab)
    finally:
        await close()  # the model clients' HTTP connections
    if journal.state.status == "finished" or journal.state.budget_exhausted:
        summarize(run_dir, journal.state)
    return code


async def _nothing() -> None:
    return None


def build_brain(state: RunState, exp: Experiment, registry: RoleRegistry, journal: Journal,
                ) -> tuple[Manager, ModelLookup, Callable[[], Awaitable[None]]]:
    """The manager, the per-role model lookup, and how to close the models afterwards."""
    from labcoat.agents.registry import SEARCH_BRAINS, role_spaces
    from labcoat.agents.search import SearchManager

    roles = exp.spec.roles or registry.names()  # the manager's menu
    parallel = int(state.config.get("parallel", 1))
    if state.brain in SEARCH_BRAINS:
        spaces = role_spaces(registry, exp.spec.roles or [], exp.spec.role_params)
        search = SearchManager(exp, roles, parallel=parallel, role_spaces=spaces,
                               sampler="random" if state.brain == "random" else "search")
        return search, no_model, _nothing
    from labcoat.agents.llm.brain import build_llm_brain

    manager, models = build_llm_brain(state, exp, journal, roles=roles,
                                      descriptions=registry.describe(roles),
                                      file_models=role_models(registry, roles))
    return manager, models, models.aclose


async def _drive(lab: Lab) -> int:
    from labcoat.orchestrator.scheduler import Scheduler

    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    caught: list[int] = []

    def on_signal(sig: int) -> None:
        if not caught and main is not None:
            main.cancel()
        caught.append(sig)

    for sig in SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await Scheduler(lab).run()
    except asyncio.CancelledError:
        if not caught:
            raise
        name = signal.Signals(caught[0]).name
        lab.emit("run_paused", reason=f"interrupted by {name}; `labcoat resume "
                 f"{lab.run_dir}` continues")
        return 130
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
    return 3 if lab.state.budget_exhausted else 0
