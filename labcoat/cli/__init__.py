"""The `labcoat` command line (Typer). Heavy libraries (docker, langgraph, SDKs) load inside
the verbs. One module per group of verbs: `running` (run, resume), `showing` (status, log,
report, view, export, roles), `maintenance` (doctor, sandbox); `common` holds the apps, the
one-message error handling and shared options. The verbs are registered below, in the order
`labcoat --help` lists them: a new verb is a function in its group's module plus one line here.
"""

from __future__ import annotations

from collections.abc import Callable

from labcoat.cli.common import app, sandbox_app
from labcoat.cli.maintenance import doctor, sandbox_build, sandbox_cleanup
from labcoat.cli.project import init
from labcoat.cli.running import resume, run
from labcoat.cli.showing import export_run, log, report, roles, status, view
from labcoat.cli.steering import approve, join_spend_over, note, reject, stop

VERBS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("run", run), ("resume", resume), ("note", note), ("approve", approve),
    ("reject", reject), ("stop", stop), ("status", status), ("log", log), ("report", report),
    ("view", view), ("export", export_run), ("roles", roles), ("doctor", doctor),
    ("init", init),
)
"""Top-level verbs in the order `labcoat --help` lists them."""
for _name, _verb in VERBS:
    app.command(_name)(_verb)
sandbox_app.command("build")(sandbox_build)
sandbox_app.command("cleanup")(sandbox_cleanup)

__all__ = ["app", "approve", "doctor", "export_run", "init", "log", "main", "note", "reject",
           "report", "resume", "roles", "run", "sandbox_build", "sandbox_cleanup", "status",
           "stop", "view"]


def main() -> None:
    import sys

    app(args=join_spend_over(sys.argv[1:]))
