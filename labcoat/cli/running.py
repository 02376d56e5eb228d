"""`labcoat run` and `labcoat resume`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from labcoat.cli.common import Cpus, GpuIds, Memory, RunDir, friendly, machine_options
from labcoat.cli.steering import Approve, ApproveTimeout, approve_options

Cluster = Annotated[str | None, typer.Option(
    help="Put the sandboxes on a Ray cluster's nodes: ray://HOST:PORT, HOST:PORT or auto "
         "($RAY_ADDRESS or a local `ray start`); on resume, local brings them back here.",
    metavar="ADDRESS")]


@friendly
def run(
    experiment_dir: Annotated[Path, typer.Argument(help="Folder holding experiment.yaml.",
                                                   metavar="EXPERIMENT_DIR")],
    goal: Annotated[str | None, typer.Option(help="Research goal (default: the spec's).",
                                             metavar="TEXT")] = None,
    model: Annotated[str | None, typer.Option(
        help="search | random | anthropic:MODEL | openai:MODEL (default: search without API "
             "keys; random: random search, the floor the search brain must beat).",
        metavar="SPEC")] = None,
    role_model: Annotated[list[str] | None, typer.Option(
        help="Per-role model, ROLE=SPEC; repeatable.", metavar="ROLE=SPEC")] = None,
    base_url: Annotated[str | None, typer.Option(
        help="OpenAI-compatible server (vLLM, Ollama, llama.cpp).", metavar="URL")] = None,
    max_iterations: Annotated[int, typer.Option(min=1)] = 3,
    parallel: Annotated[int, typer.Option(min=1, help="Subtasks at once.")] = 2,
    budget_usd: Annotated[float | None, typer.Option(
        help="Stop new model calls past this many dollars.")] = None,
    budget_tokens: Annotated[int | None, typer.Option(help="Token budget for model calls.")] = None,
    time_limit: Annotated[float | None, typer.Option(help="Wall-clock limit, seconds.")] = None,
    patience: Annotated[int, typer.Option(help="Stop after N iterations without gain.")] = 3,
    seed: Annotated[int, typer.Option()] = 0, cluster: Cluster = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run directories go.")] = Path("runs"),
    pipeline_depth: Annotated[int, typer.Option(
        min=1, help="Iterations in flight (1: wait for each iteration to close).")] = 2,
    role_timeout: Annotated[float | None, typer.Option(
        help="Seconds a role may work (default: 4 x the experiment's timeout_s).")] = None,
    cpus: Cpus = None, memory: Memory = None, gpu_ids: GpuIds = None,
    approve: Approve = None, approve_timeout: ApproveTimeout = None,
) -> None:
    """Start a research run; prints the run directory."""
    from labcoat.orchestrator.commands import RunOptions, start_run

    opts = RunOptions(
        goal=goal, model=model, role_models=role_model or [], base_url=base_url, cluster=cluster,
        max_iterations=max_iterations, parallel=parallel, budget_usd=budget_usd,
        budget_tokens=budget_tokens, time_limit_s=time_limit, patience=patience, seed=seed,
        runs_dir=runs_dir, pipeline_depth=pipeline_depth, role_timeout_s=role_timeout,
        **machine_options(cpus, memory, gpu_ids), **approve_options(approve, approve_timeout),
    )
    sys.exit(start_run(experiment_dir, opts))


@friendly
def resume(
    run_dir: RunDir,
    max_iterations: Annotated[int | None, typer.Option(help="Raise the iteration budget.")] = None,
    budget_usd: Annotated[float | None, typer.Option(help="Raise the dollar budget.")] = None,
    budget_tokens: Annotated[int | None, typer.Option(help="Raise the token budget.")] = None,
    time_limit: Annotated[float | None, typer.Option(help="New wall-clock limit, seconds.")] = None,
    cluster: Cluster = None,
    cpus: Cpus = None, memory: Memory = None, gpu_ids: GpuIds = None,
    approve: Approve = None, approve_timeout: ApproveTimeout = None,
) -> None:
    """Continue a run from its log."""
    from labcoat.orchestrator.commands import resume_run

    sys.exit(resume_run(run_dir, max_iterations=max_iterations, budget_usd=budget_usd,
                        budget_tokens=budget_tokens, time_limit_s=time_limit, cluster=cluster,
                        **machine_options(cpus, memory, gpu_ids),
                        **approve_options(approve, approve_timeout)))
