"""The async part of a run: sandboxes, the graph, signals, and the summary at the end."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

from labcoat.orchestrator.spec import Experiment

SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def run_session(run_dir: Path, journal: Any, exp: Experiment) -> int:
    from labcoat.agents.registry import default_registry
    from labcoat.orchestrator.lab import Lab
    from labcoat.orchestrator.progress import Progress
    from labcoat.orchestrator.workspace import Workspace
    from labcoat.sandboxes.docker import DockerProvider

    state = journal.state
    cfg = state.config
    registry = default_registry(exp.dir)
    manager, models = build_brain(state, exp, registry, journal)
    progress = Progress(metric=exp.spec.metric.name, max_iterations=cfg.get("max_iterations"))
    try:
        async with DockerProvider(run_id=state.run_id,
                                  pool_size=int(cfg.get("parallel", 1))) as box:
            lab = Lab(run_dir=run_dir, journal=journal, experiment=exp,
                      workspace=Workspace(run_dir / "workspace"), provider=box, manager=manager,
                      roles=registry, progress=progress, models=models)
            lab.sync_best()  # a stop right after a grade may have left labcoat/best behind
            with progress:
                code = await _drive(lab)
    finally:
        if hasattr(models, "aclose"):
            await models.aclose()  # the model clients' HTTP connections
    if journal.state.status == "finished" or journal.state.budget_exhausted:
        summarize(run_dir, journal.state)
    return code


def build_brain(state: Any, exp: Experiment, registry: Any, journal: Any) -> tuple[Any, Any]:
    """The manager and the per-role model lookup for the run's brain (the LLM brain's model
    events go to `journal`)."""
    from labcoat.agents.manager import SearchManager

    roles = exp.spec.roles or registry.names()  # the manager's menu
    parallel = int(state.config.get("parallel", 1))
    if state.brain == "search":
        return SearchManager(exp, roles, parallel=parallel), lambda role: None
    from labcoat.agents.llm_brain import build_llm_brain

    return build_llm_brain(state, exp, registry, roles, journal)


async def _drive(lab: Any) -> int:
    from labcoat.orchestrator.graph import build_graph

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
        await build_graph(lab).ainvoke({"steps": 0}, {"recursion_limit": 1_000_000})
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


def summarize(run_dir: Path, state: Any) -> None:
    from labcoat.orchestrator.report import write_report

    report = write_report(run_dir)
    best, base = state.best, state.baseline
    name = state.metric_name
    shown_base = f"{base:.4g}" if base is not None else "n/a"
    shown_best = f"{best.metric:.4g} ({best.subtask}, branch labcoat/best)" if best else "n/a"
    print(f"{name}: baseline {shown_base} -> best {shown_best}", file=sys.stderr)
    print(f"report: {report}", file=sys.stderr)
