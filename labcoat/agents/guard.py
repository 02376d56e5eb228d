"""Running a role so that whatever its code does costs at most its own subtask.

`run_role_guarded(role, subtask, ctx, timeout_s)`: an exception (even `SystemExit`), no result
within `timeout_s`, or a return value that is not a `RoleResult` become a failed `RoleResult`
naming the role and where it failed. Infrastructure and budget errors still propagate: they
belong to the run, not to the role.

A role that raised comes back as a `RoleCrashed`: its one-line error points at the deepest frame
of the role's own package (not at a library it called), and it carries the full traceback,
which the loop keeps in `artifacts/<subtask-id>/role-traceback.txt` (`TRACEBACK_FILE`).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import traceback
from collections.abc import Awaitable, Coroutine
from typing import Any

from labcoat.agents.role import Role, RoleContext, RoleResult, Subtask
from labcoat.errors import (
    BudgetExhausted,
    ModelAuthError,
    ModelQuotaError,
    ModelUnavailable,
    SandboxUnavailable,
    one_line,
)

CANCEL_GRACE_S = 5.0
"""How long a timed-out role may take to unwind after it is cancelled."""
TRACEBACK_FILE = "role-traceback.txt"
"""Where in `artifacts/<subtask-id>/` the full traceback of a role that raised is kept."""


class RoleCrashed(RoleResult):
    """The failed result of a role that raised: `traceback` is the whole story."""

    traceback: str = ""


async def run_role_guarded(role: Role, subtask: Subtask, ctx: RoleContext,
                           timeout_s: float | None) -> RoleResult:
    """Run `role` on `subtask`; failures of the role's own code become a failed `RoleResult`.

    An exception (even `SystemExit`), no result within `timeout_s`, or a return value that is
    not a `RoleResult` fail this subtask only, with `error="role <name> <what happened>: ..."`.
    Cancellation and Ctrl-C still propagate: they belong to the run, not to the role.
    """
    name = getattr(role, "name", None) or type(role).__name__
    try:
        pending = role.run(subtask, ctx)
        if not inspect.isawaitable(pending):
            return _failed(name, f"run() is not async: it returned {type(pending).__name__} "
                                 "(fix: declare it `async def run(self, subtask, ctx)`)")
        finished, result = await _within(_no_exit(pending), timeout_s)
    except RoleExited as err:
        return _crashed(role, subtask, str(err), err.__cause__ or err)
    except (SandboxUnavailable, BudgetExhausted, ModelAuthError, ModelQuotaError,
            ModelUnavailable):
        raise  # infrastructure or budget, not the role's failure: the run retries or pauses
    except (Exception, SystemExit) as err:
        return _crashed(role, subtask, one_line(err), err)
    if not finished:
        return timed_out(name, timeout_s or 0.0)
    if not isinstance(result, RoleResult):
        return _failed(name, f"returned the wrong type: expected RoleResult, got "
                             f"{type(result).__name__} ({result!r:.80})")
    return result


def timed_out(name: str, timeout_s: float, *, blocked: bool = False) -> RoleResult:
    """The failed result of a role past its time limit (`blocked`: its code never yielded)."""
    how = ("its code was blocked and is abandoned" if blocked else "the subtask was cancelled")
    return _failed(name, f"timed out: no result after {timeout_s:g} s ({how}); the role time "
                         "limit is `role_timeout_s` in the run options")


class RoleExited(Exception):
    """A role called `sys.exit()`: asyncio would stop the whole loop, so it is converted."""


async def _no_exit(pending: Awaitable[object]) -> object:
    try:
        return await pending
    except SystemExit as err:
        raise RoleExited(f"SystemExit: {err.code}") from err


async def _within(pending: Coroutine[Any, Any, object], timeout_s: float | None,
                  ) -> tuple[bool, object]:
    """(True, result) or (False, None) past the deadline. Unlike `wait_for`, a TimeoutError
    raised by the role itself is reported as what it is, not as a hang."""
    task = asyncio.ensure_future(pending)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if done:
        return True, task.result()
    task.cancel()
    await asyncio.wait({task}, timeout=CANCEL_GRACE_S)  # let it close what it opened
    return False, None


def _failed(name: str, what: str) -> RoleResult:
    return RoleResult(ok=False, grade=False, changes=False, error=f"role {name} {what}")


def _crashed(role: Role, subtask: Subtask, what: str, err: BaseException) -> RoleCrashed:
    name = getattr(role, "name", None) or type(role).__name__
    frames = traceback.extract_tb(err.__traceback__)
    home = _home(role)
    own = [f for f in frames if home and f.filename.startswith(home)] or frames
    where = f"at {own[-1].filename}:{own[-1].lineno}; " if own else ""
    error = (f"role {name} raised {what} ({where}full traceback in "
             f"artifacts/{subtask.id}/{TRACEBACK_FILE})")
    return RoleCrashed(ok=False, grade=False, changes=False, error=error,
                       traceback="".join(traceback.format_exception(err)))


def _home(role: Role) -> str:
    """The folder of the package (or the file of the module) that defines `role`'s class."""
    top = sys.modules.get(type(role).__module__.partition(".")[0])
    path = str(getattr(top, "__file__", None) or "")
    if not path:
        return ""
    return os.path.dirname(path) + os.sep if os.path.basename(path) == "__init__.py" else path
