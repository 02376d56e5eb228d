"""The `labcoat` console script. Tiny on purpose: it loads the CLI framework only when needed.

`labcoat status RUN [--json]` and `labcoat log RUN [-f]` are the verbs people (and scripts) type
most; parsing arguments with typer costs more than their work, so plain invocations of those two
are served directly. Everything else, including `--help` and any typo, goes through
`labcoat.cli`.

A reader that goes away early (`labcoat log RUN | head -1`) ends the command quietly with exit
code 1, as click does for the other verbs: no traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FAST_VERBS = {"status": {"--json"}, "log": {"--follow", "-f"}}


def fast_path(argv: list[str]) -> int | None:
    """Exit code of a plain `status`/`log` call, or None when typer should handle `argv`."""
    if len(argv) < 2 or argv[0] not in FAST_VERBS:
        return None
    run_dir, flags = argv[1], argv[2:]
    if run_dir.startswith("-") or not set(flags) <= FAST_VERBS[argv[0]] or len(flags) > 1:
        return None
    from labcoat.errors import LabcoatError
    from labcoat.text import inert

    try:
        _serve(argv[0], Path(run_dir), bool(flags))
    except LabcoatError as err:
        print(f"labcoat: error: {inert(str(err))}", file=sys.stderr)
        return err.exit_code
    except BrokenPipeError:
        return reader_gone()
    return 0


def _serve(verb: str, run_dir: Path, flag: bool) -> None:
    if verb == "status":
        from labcoat.views.status import print_status

        print_status(run_dir, as_json=flag)
    else:
        from labcoat.views.timeline import print_timeline

        print_timeline(run_dir, follow=flag)
    sys.stdout.flush()  # inside the caller's `try`: a closed pipe shows here, not at exit


def reader_gone() -> int:
    """stdout's reader closed the pipe: send what is still buffered nowhere (so the exit flush
    raises nothing) and end with 1, click's code for the same case."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 1


def main() -> None:
    code = fast_path(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from labcoat.cli import main as cli_main

    cli_main()
