"""Looking after the machine: doctor, and building and cleaning sandboxes."""

from __future__ import annotations

from typing import Annotated

import typer

from labcoat.cli.common import friendly


def doctor() -> None:
    """Check the Docker engine, sandbox image, API keys and disk; say how to fix each."""
    from labcoat.orchestrator.doctor import run_doctor

    raise typer.Exit(run_doctor())


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


@friendly
def sandbox_cleanup(
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run's containers.")] = None,
) -> None:
    """Remove labcoat containers: one run's, or every run whose process is gone."""
    from labcoat.sandboxes.cleanup import cleanup_command

    typer.echo(cleanup_command(run_id))
