"""The `labcoat` command line. Heavy libraries (docker, langgraph, SDKs) load inside the verbs."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from labcoat.errors import LabcoatError
from labcoat.text import inert

app = typer.Typer(
    name="labcoat",
    help="An autonomous research lab in a box: plan, run in sandboxes, grade, log, resume.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich's markdown stack costs ~130 ms at start-up
)
sandbox_app = typer.Typer(help="Build the sandbox image, remove leftover containers.",
                          no_args_is_help=True, rich_markup_mode=None)
app.add_typer(sandbox_app, name="sandbox")

F = TypeVar("F", bound=Callable[..., Any])


def friendly(fn: F) -> F:
    """Turn a LabcoatError into one message on stderr (inert: it may quote agent output) and
    its exit code: no traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except LabcoatError as err:
            typer.echo(f"labcoat: error: {inert(str(err))}", err=True)
            raise typer.Exit(err.exit_code) from None

    return wrapper  # type: ignore[return-value]


RunDir = Annotated[Path, typer.Argument(help="A run directory (runs/<run-id>).",
                                        metavar="RUN_DIR")]


@app.command()
@friendly
def run(
    experiment_dir: Annotated[Path, typer.Argument(help="Folder holding experiment.yaml.",
                                                   metavar="EXPERIMENT_DIR")],
    goal: Annotated[str | None, typer.Option(help="Research goal (default: the spec's).",
                                             metavar="TEXT")] = None,
    model: Annotated[str | None, typer.Option(
        help="search | anthropic:MODEL | openai:MODEL (default: search without API keys).",
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
    seed: Annotated[int, typer.Option()] = 0,
    runs_dir: Annotated[Path, typer.Option(help="Where run directories go.")] = Path("runs"),
    pipeline_depth: Annotated[int, typer.Option(
        min=1, help="Iterations in flight (1: wait for each iteration to close).")] = 2,
    role_timeout: Annotated[float | None, typer.Option(
        help="Seconds a role may work (default: 4 x the experiment's timeout_s).")] = None,
    cpus: Annotated[float | None, typer.Option(
        help="CPUs labcoat may use (default: the engine's).")] = None,
    memory: Annotated[str | None, typer.Option(
        help="Memory labcoat may use, e.g. 24g (default: the engine's).", metavar="SIZE")] = None,
    gpu_ids: Annotated[str | None, typer.Option(
        help="GPU device ids labcoat may use, e.g. 0,1 (default: the host's).",
        metavar="IDS")] = None,
) -> None:
    """Start a research run; prints the run directory."""
    from labcoat.orchestrator.commands import RunOptions, start_run

    opts = RunOptions(
        goal=goal, model=model, role_models=role_model or [], base_url=base_url,
        max_iterations=max_iterations, parallel=parallel, budget_usd=budget_usd,
        budget_tokens=budget_tokens, time_limit_s=time_limit, patience=patience, seed=seed,
        runs_dir=runs_dir, pipeline_depth=pipeline_depth, role_timeout_s=role_timeout,
        **machine_options(cpus, memory, gpu_ids),
    )
    sys.exit(start_run(experiment_dir, opts))


@app.command()
@friendly
def resume(
    run_dir: RunDir,
    max_iterations: Annotated[int | None, typer.Option(help="Raise the iteration budget.")] = None,
    budget_usd: Annotated[float | None, typer.Option(help="Raise the dollar budget.")] = None,
    budget_tokens: Annotated[int | None, typer.Option(help="Raise the token budget.")] = None,
    time_limit: Annotated[float | None, typer.Option(help="New wall-clock limit, seconds.")] = None,
    cpus: Annotated[float | None, typer.Option(help="CPUs labcoat may use.")] = None,
    memory: Annotated[str | None, typer.Option(help="Memory labcoat may use, e.g. 24g.",
                                               metavar="SIZE")] = None,
    gpu_ids: Annotated[str | None, typer.Option(help="GPU device ids labcoat may use, e.g. 0,1.",
                                                metavar="IDS")] = None,
) -> None:
    """Continue a run from its log."""
    from labcoat.orchestrator.commands import resume_run

    sys.exit(resume_run(run_dir, max_iterations=max_iterations, budget_usd=budget_usd,
                        budget_tokens=budget_tokens, time_limit_s=time_limit,
                        **machine_options(cpus, memory, gpu_ids)))


def machine_options(cpus: float | None, memory: str | None, gpu_ids: str | None,
                    ) -> dict[str, Any]:
    """`--cpus/--memory/--gpu-ids` as run options (a bad size is one message, exit 2)."""
    from labcoat.errors import ConfigError
    from labcoat.experiment import parse_memory

    try:
        memory_mb = parse_memory(memory) if memory is not None else None
    except ValueError as err:
        raise ConfigError(f"--memory: {err}") from None
    ids = [g.strip() for g in gpu_ids.split(",") if g.strip()] if gpu_ids is not None else None
    return {"cpus": cpus, "memory_mb": memory_mb, "gpu_ids": ids}


@app.command()
@friendly
def status(
    run_dir: RunDir,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """Summary of a run: state, iteration, subtasks, best result, cost."""
    from labcoat.views.status import print_status

    print_status(run_dir, as_json=json_out)


@app.command()
@friendly
def log(
    run_dir: RunDir,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Keep printing new events.")] = False,
) -> None:
    """Readable timeline of a run."""
    from labcoat.views.timeline import print_timeline

    print_timeline(run_dir, follow=follow)


@app.command()
@friendly
def report(run_dir: RunDir) -> None:
    """Write report.md and the metric plot for a run."""
    from labcoat.views.report import write_report

    typer.echo(write_report(run_dir))


@app.command()
@friendly
def view(
    target: Annotated[Path, typer.Argument(
        help="A runs folder, or one run directory.", metavar="[RUNS_DIR|RUN_DIR]")] = Path("runs"),
    host: Annotated[str, typer.Option(
        help="Address to listen on; any but 127.0.0.1 lets others read the runs.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port; 0 for any free one.")] = 8000,
    open_browser: Annotated[bool, typer.Option("--open", help="Open it in a browser.")] = False,
    export: Annotated[Path | None, typer.Option(
        help="Write a static site of RUN_DIR to DIR instead (opens from disk).", metavar="DIR")
    ] = None,
) -> None:
    """Live web viewer of runs (127.0.0.1 by default), or a static site with --export DIR."""
    if export is not None:
        from labcoat.views.web.export import export_site

        typer.echo(export_site(target, export))
        return
    from labcoat.views.web.serve import serve

    sys.exit(serve(target, host=host, port=port, open_browser=open_browser))


@app.command("export")
@friendly
def export_run(
    run_dir: RunDir,
    mlflow: Annotated[bool, typer.Option(
        "--mlflow", help="Log the run and its graded subtasks to MLflow.")] = False,
    tracking_uri: Annotated[str | None, typer.Option(
        help="MLflow tracking URI (default: ./mlruns).", metavar="URI")] = None,
) -> None:
    """Export a run to another tool: --mlflow (needs pip install 'labcoat[mlflow]')."""
    from labcoat.errors import ConfigError

    if not mlflow:
        raise ConfigError("say where to export the run: labcoat export RUN_DIR --mlflow")
    from labcoat.views.mlflow_export import export_mlflow

    typer.echo(export_mlflow(run_dir, tracking_uri=tracking_uri))


@app.command()
@friendly
def roles(
    experiment_dir: Annotated[Path | None, typer.Argument(
        help="Also list the role files in this experiment's roles/ folder.")] = None,
) -> None:
    """List roles: built-in, from plugins, from role files."""
    from labcoat.agents.registry import role_rows
    from labcoat.views.table import print_rows

    print_rows(("role", "from", "description"), role_rows(experiment_dir), title="labcoat roles")


@app.command()
def doctor() -> None:
    """Check the Docker engine, sandbox image, API keys and disk; say how to fix each."""
    from labcoat.orchestrator.doctor import run_doctor

    raise typer.Exit(run_doctor())


@sandbox_app.command("build")
@friendly
def sandbox_build(
    base: Annotated[str | None, typer.Option(
        help="Base on this image (e.g. python:3.11-slim) instead of the offline mmdebstrap base.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even when the tag exists.")] = False,
) -> None:
    """Build the sandbox image (offline when no registry is reachable)."""
    from labcoat.sandboxes.image import build_image

    build_image(base=base, force=force, say=typer.echo)


@sandbox_app.command("cleanup")
@friendly
def sandbox_cleanup(
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run's containers.")] = None,
) -> None:
    """Remove labcoat containers: one run's, or every run whose process is gone."""
    from labcoat.sandboxes.cleanup import cleanup_command

    typer.echo(cleanup_command(run_id))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
