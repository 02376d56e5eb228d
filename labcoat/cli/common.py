"""What every verb shares: the Typer apps, one-message errors, and common options."""

from __future__ import annotations

import functools
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


Cpus = Annotated[float | None, typer.Option(
    help="CPUs labcoat may use on this machine (default: the engine's; with --cluster, each "
    "node's Ray resources decide).")]
Memory = Annotated[str | None, typer.Option(
    help="Memory labcoat may use on this machine, e.g. 24g (default: the engine's; "
    "with --cluster, each node's Ray resources decide).", metavar="SIZE")]
GpuIds = Annotated[str | None, typer.Option(
    help="GPU device ids labcoat may use on this machine, e.g. 0,1 (default: the host's; "
    "with --cluster, each node's Ray GPUs decide).", metavar="IDS")]


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
