"""Looking after the machine: doctor, and building and cleaning sandboxes."""

from __future__ import annotations

from typing import Annotated

import typer

from labcoat.cli.common import friendly

ClusterOption = Annotated[str | None, typer.Option(
    "--cluster", help="A Ray cluster (ray://HOST:PORT, HOST:PORT or auto): every node.",
    metavar="ADDRESS")]


@friendly
def doctor(
    cluster: ClusterOption = None,
    build: Annotated[bool, typer.Option(
        help="With --cluster: build labcoat's image on the nodes that lack it.")] = False,
) -> None:
    """Check the Docker engine, sandbox image, API keys and disk (with --cluster: each node's
    engine, image and free resources); say how to fix each."""
    from labcoat.orchestrator.doctor import run_doctor

    raise typer.Exit(run_doctor(cluster=cluster, build=build))


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
    cluster: ClusterOption = None,
) -> None:
    """Remove labcoat containers: one run's, or every run whose process is gone (with
    --cluster: on every node of the cluster)."""
    from labcoat.sandboxes.ray.address import normalize

    if normalize(cluster) is not None:  # `local`: this machine
        from labcoat.sandboxes.ray.ops import cleanup_all

        typer.echo(cleanup_all(str(cluster), run_id))
        return
    from labcoat.sandboxes.cleanup import cleanup_command

    typer.echo(cleanup_command(run_id))
