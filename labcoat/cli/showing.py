"""The verbs that show a run: status, log, report, view, export, roles."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from labcoat.cli.common import RunDir, friendly


@friendly
def status(
    run_dir: RunDir,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False,
) -> None:
    """Summary of a run: state, iteration, subtasks, best result, cost."""
    from labcoat.views.status import print_status

    print_status(run_dir, as_json=json_out)


@friendly
def log(
    run_dir: RunDir,
    follow: Annotated[bool, typer.Option(
        "--follow", "-f", help="Keep printing new events.")] = False,
) -> None:
    """Readable timeline of a run."""
    from labcoat.views.timeline import print_timeline

    print_timeline(run_dir, follow=follow)


@friendly
def report(run_dir: RunDir) -> None:
    """Write report.md and the metric plot for a run."""
    from labcoat.views.report import write_report

    typer.echo(write_report(run_dir))


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


@friendly
def roles(
    experiment_dir: Annotated[Path | None, typer.Argument(
        help="Also list the role files in this experiment's roles/ folder.")] = None,
) -> None:
    """List roles: built-in, from plugins, from role files."""
    from labcoat.agents.registry import role_rows
    from labcoat.views.table import print_rows

    print_rows(("role", "from", "description"), role_rows(experiment_dir), title="labcoat roles")
