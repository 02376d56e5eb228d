"""The `labcoat` console script. Tiny on purpose: it loads the CLI framework only when needed.

`labcoat status RUN [--json]` and `labcoat log RUN [-f]` are the verbs people (and scripts) type
most; parsing arguments with typer costs more than their work, so plain invocations of those two
are served directly. Everything else, including `--help` and any typo, goes through
`labcoat.cli`.
"""

from __future__ import annotations

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

    try:
        if argv[0] == "status":
            from labcoat.views.status import print_status

            print_status(Path(run_dir), as_json=bool(flags))
        else:
            from labcoat.views.timeline import print_timeline

            print_timeline(Path(run_dir), follow=bool(flags))
    except LabcoatError as err:
        print(f"labcoat: error: {err}", file=sys.stderr)
        return err.exit_code
    return 0


def main() -> None:
    code = fast_path(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from labcoat.cli import main as cli_main

    cli_main()
