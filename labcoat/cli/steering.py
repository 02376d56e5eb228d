"""The verbs that steer a run through its log: note, approve, reject, stop. Each works on a live
run (through its inbox) and on a stopped one (appending under the log's lock); bad input is one
message and exit code 2, with nothing written (`labcoat.orchestrator.steering`)."""

from __future__ import annotations

import math
from typing import Annotated, Any

import typer

from labcoat.cli.common import RunDir, friendly


@friendly
def note(
    run_dir: RunDir,
    text: Annotated[str, typer.Argument(help="What to tell the run.", metavar="TEXT")],
) -> None:
    """Add a note to a run, live or stopped; the LLM manager takes it into account next."""
    from labcoat.orchestrator.steering import note_request, send

    typer.echo(send(run_dir, note_request(text)))


@friendly
def approve(
    run_dir: RunDir,
    only: Annotated[str | None, typer.Option(
        help="Approve only these waiting subtasks (the others are declined).",
        metavar="ID,...")] = None,
) -> None:
    """Approve the plan that waits for a person (`--approve`), or only some of its subtasks."""
    from labcoat.orchestrator.steering import approve_request, send

    ids = [x.strip() for x in (only or "").split(",") if x.strip()]
    if only is not None and not ids:
        from labcoat.errors import ConfigError

        raise ConfigError("--only names no subtask; fix: --only it002-01,it002-03")
    typer.echo(send(run_dir, approve_request(ids)))


@friendly
def reject(
    run_dir: RunDir,
    reason: Annotated[str, typer.Option(
        help="Why: the manager plans again with it.", metavar="TEXT")],
) -> None:
    """Reject the plan that waits for a person; the manager plans again with the reason."""
    from labcoat.orchestrator.steering import reject_request, send

    typer.echo(send(run_dir, reject_request(reason)))


@friendly
def stop(
    run_dir: RunDir,
    now: Annotated[bool, typer.Option(
        "--now", help="Cancel the running subtasks too (they run again at resume).")] = False,
) -> None:
    """Ask a live run to stop: nothing new starts, running subtasks finish and are graded,
    then it pauses (exit code 3); `labcoat resume` goes on."""
    from labcoat.orchestrator.steering import send, stop_request

    typer.echo(send(run_dir, stop_request(now)))


Approve = Annotated[list[str] | None, typer.Option(
    "--approve", help="Ask a person first: `plans` (every plan waits) or `spend-over USD` (a "
    "subtask whose worst-case model spend exceeds USD waits); repeatable.",
    metavar="plans|spend-over USD")]
ApproveTimeout = Annotated[float | None, typer.Option(
    "--approve-timeout", help="Pause with exit code 4 after waiting this many seconds for a "
    "decision.", metavar="S")]


def approve_options(values: list[str] | None, timeout: float | None) -> dict[str, Any]:
    """`--approve ...` and `--approve-timeout` as run options (a bad value: exit 2)."""
    from labcoat.errors import ConfigError

    out: dict[str, Any] = {}
    for value in values or []:
        kind, _, usd = value.partition("=")
        if value == "plans":
            out["approve_plans"] = True
        elif kind == "spend-over" and _dollars(usd) is not None:
            out["approve_spend_over_usd"] = _dollars(usd)
        else:
            raise ConfigError(f"--approve {value.replace('=', ' ')}: expected `plans` or "
                              "`spend-over USD` (e.g. --approve spend-over 0.50)")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"--approve-timeout {timeout:g}: expected seconds > 0")
    return out | ({"approve_timeout_s": timeout} if timeout is not None else {})


def _dollars(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value >= 0 and math.isfinite(value) else None


def join_spend_over(argv: list[str]) -> list[str]:
    """`--approve spend-over USD` (two words, as people type it) as `--approve spend-over=USD`
    (the one value an option takes)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        form = "--approve=spend-over" if word == "--approve=spend-over" else None
        if word == "--approve" and argv[i + 1:i + 2] == ["spend-over"] and i + 2 < len(argv):
            out += ["--approve", f"spend-over={argv[i + 2]}"]
            i += 3
        elif form and i + 1 < len(argv):
            out += ["--approve", f"spend-over={argv[i + 1]}"]
            i += 2
        else:
            out.append(word)
            i += 1
    return out
