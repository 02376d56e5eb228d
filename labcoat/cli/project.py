"""`labcoat init`: turn a project folder into an experiment."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from labcoat.cli.common import friendly
from labcoat.errors import ConfigError

if TYPE_CHECKING:
    from labcoat.orchestrator.init import InitOptions

RUN_GUESSES = ("train.py", "main.py", "run.py")
"""Scripts `--yes` takes for the run command, in this order, when `--run` is not given."""


@friendly
def init(
    folder: Annotated[Path, typer.Argument(help="The project folder (default: here).",
                                           metavar="DIR")] = Path("."),
    run: Annotated[str | None, typer.Option(
        "--run", help="Command that runs the project, e.g. 'python3 train.py'.",
        metavar="CMD")] = None,
    metric: Annotated[str | None, typer.Option(
        help="Metric name in evaluate's JSON object, e.g. accuracy.", metavar="NAME")] = None,
    direction: Annotated[str | None, typer.Option(
        help="maximize | minimize (default: guessed from the metric's name).")] = None,
    grader: Annotated[list[str] | None, typer.Option(
        help="A project path that belongs to the grader (held-out labels, a scoring script); "
             "repeatable.", metavar="PATH")] = None,
    evaluate: Annotated[str | None, typer.Option(
        help="Scoring command (default: grader/evaluate.py, a skeleton to finish).",
        metavar="CMD")] = None,
    name: Annotated[str | None, typer.Option(help="Experiment name (default: the folder's).")
                    ] = None,
    force: Annotated[bool, typer.Option(help="Write over an existing experiment.yaml.")] = False,
    check: Annotated[bool, typer.Option(
        help="Run the baseline once in a sandbox before writing (--no-check skips it).")
    ] = True,
    yes: Annotated[bool, typer.Option(
        "--yes", "-y", help="Ask nothing: take the flags, guess the rest, or fail.")] = False,
) -> None:
    """Turn a project folder into an experiment (experiment.yaml, workspace/, grader/)."""
    from labcoat.orchestrator.init import init_experiment

    ask = not yes and sys.stdin.isatty()
    written = init_experiment(_options(
        folder=folder, run=run or _run_command(folder, ask), metric=metric or _metric(ask),
        direction=_direction(direction), grader=grader or _grader_paths(ask),
        evaluate=evaluate, name=name, force=force, check=check))
    typer.echo(f"wrote {written}; next: labcoat run {written.parent}")


def _options(**fields: object) -> InitOptions:
    from pydantic import ValidationError

    from labcoat.orchestrator.init import InitOptions

    try:
        return InitOptions.model_validate(fields)
    except ValidationError as err:
        first = err.errors()[0]
        raise ConfigError(f"--{first['loc'][0]}: {first['msg']}") from None


def _run_command(folder: Path, ask: bool) -> str:
    guess = next((f"python3 {n}" for n in RUN_GUESSES
                  if (folder / n).is_file() or (folder / "workspace" / n).is_file()), None)
    if ask:
        return str(typer.prompt("Command that runs the project", default=guess))
    if guess is None:
        raise ConfigError(f"{folder}: no {', '.join(RUN_GUESSES)} to run; fix: pass --run CMD")
    return guess


def _metric(ask: bool) -> str:
    if ask:
        return str(typer.prompt("Metric name (a key of evaluate's JSON object)"))
    raise ConfigError("no metric given; fix: pass --metric NAME (e.g. --metric accuracy)")


def _direction(given: str | None) -> str | None:
    if given is not None and given not in ("maximize", "minimize"):
        raise ConfigError(f"--direction {given}: expected maximize or minimize")
    return given


def _grader_paths(ask: bool) -> list[str]:
    if not ask:
        return []
    answer = str(typer.prompt("Paths that belong to the grader, comma-separated", default=""))
    return [p.strip() for p in answer.split(",") if p.strip()]
