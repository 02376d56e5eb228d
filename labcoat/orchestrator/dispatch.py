"""The loop's work step: one subtask's role in its own sandbox, and what it produced recorded.

A role gets a sandbox holding its base commit at /workspace (unless it needs none), runs guarded
(whatever it does costs only its subtask), and its workspace becomes a git tree. Graded results
are committed by grading; other changes are committed here.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labcoat.agents.guard import TRACEBACK_FILE, RoleCrashed
from labcoat.agents.isolation import run_role_isolated
from labcoat.agents.role import Role, RoleContext, RoleResult, Subtask
from labcoat.errors import LabcoatError, UnsafeOutputError
from labcoat.experiment import trial_env
from labcoat.orchestrator.lab import Lab, retrying
from labcoat.orchestrator.results import commit_result, regrade
from labcoat.orchestrator.sandboxing import check_disk_floor, host_tmp, sandbox_spec
from labcoat.sandboxes.base import Sandbox

SUBTASK_EVENTS = frozenset({"sandbox_exec", "llm_call"})
"""Events a role may emit that carry its subtask id (filled in when the role leaves it out)."""
ROLE_TIMEOUT_FACTOR = 4
"""Without `role_timeout_s` in the run options, a role may take this many command timeouts."""


async def work(lab: Lab, sid: str) -> None:
    """Run subtask `sid`'s role (retried once on a dead sandbox, then failed)."""
    check_disk_floor(lab.run_dir, lab.provider)
    await retrying(lambda s: _work(lab, s), sid, lambda s, why: _give_up(lab, s, why))


async def _give_up(lab: Lab, sid: str, error: str) -> None:
    rec = lab.state.subtasks[sid]
    failed(lab, Subtask.model_validate(rec.subtask), max(rec.attempts, 1), error)


async def _work(lab: Lab, sid: str) -> None:
    rec = lab.state.subtasks[sid]
    sub = Subtask.model_validate(rec.subtask)
    attempt = rec.attempts + 1
    started = lab.emit("subtask_started", iteration=sub.iteration, subtask_id=sid,
                       role=sub.role, attempt=attempt, base_commit=sub.base_commit)
    try:
        role = lab.roles.get(sub.role)
    except LabcoatError as err:
        failed(lab, sub, attempt, str(err))
        return
    box = await _role_sandbox(lab, role, sub)
    try:
        ctx = _context(lab, sub, box, started.id, role)
        result = await run_role_isolated(role, sub, ctx, role_timeout(lab))
        keep_traceback(lab, sid, result)
        await _record(lab, sub, attempt, box, result, role)
    finally:
        if box is not None:
            await box.aclose()


async def _role_sandbox(lab: Lab, role: Role, sub: Subtask) -> Sandbox | None:
    if not getattr(role, "uses_sandbox", True):
        return None
    spec = sandbox_spec(lab.experiment, lab.run_id, sub.id, env=trial_env(sub.params, sub.seed))
    box = await lab.provider.create(spec)
    try:
        with tempfile.TemporaryDirectory(prefix="base-", dir=host_tmp(lab.run_dir)) as tmp:
            await asyncio.to_thread(lab.workspace.export, sub.base_commit, Path(tmp))
            await box.put_dir(Path(tmp), "/workspace")
    except BaseException:
        await box.aclose()
        raise
    return box


def _context(lab: Lab, sub: Subtask, box: Sandbox | None, parent: str,
             role: Role) -> RoleContext:
    def emit(type_: str, fields: Mapping[str, Any]) -> None:
        defaults = {"subtask_id": sub.id} if type_ in SUBTASK_EVENTS else {}
        lab.emit(type_, iteration=sub.iteration, parent=parent, **(defaults | dict(fields)))

    async def grade(commit: str, seed: int) -> dict[str, float] | None:
        return await regrade(lab, sub.target or sub.id, commit, seed, sub.iteration)

    return RoleContext(run_id=lab.run_id, spec=lab.experiment, sandbox=box, emit=emit,
                       grade=grade, state=lab.state, model=lab.models(sub.role),
                       limits=dict(lab.config.get("limits", {})),
                       instructions=getattr(role, "instructions", ""))


def candidate_of(result: RoleResult, role: Role) -> bool:
    """The result's own word (`RoleResult.candidate`), else its role's declared default."""
    if result.candidate is not None:
        return result.candidate
    return getattr(role, "candidate", True) is not False


async def _record(lab: Lab, sub: Subtask, attempt: int, box: Sandbox | None,
                  result: RoleResult, role: Role) -> None:
    if not result.ok:
        failed(lab, sub, attempt, result.error or "the role reported failure")
        return
    base_tree = await asyncio.to_thread(lab.workspace.tree_of, sub.base_commit)
    try:
        tree = await _collect(lab, box) if (result.changes and box is not None) else base_tree
    except UnsafeOutputError as err:  # the role's doing, not the run's: fail the subtask
        failed(lab, sub, attempt, f"its workspace cannot be taken: {err}")
        return
    fields: dict[str, Any] = dict(subtask_id=sub.id, role=sub.role, attempt=attempt,
                                  summary=result.summary, changed=tree != base_tree)
    if not candidate_of(result, role):
        fields["candidate"] = False
    if result.critique is not None:
        critique = result.critique.model_dump(mode="json")
        lab.emit("critique", iteration=sub.iteration, subtask_id=sub.id, **critique)
        fields["critique"] = critique
    if result.grade:
        fields["tree"] = tree
    elif tree != base_tree:
        fields["commit"] = await asyncio.to_thread(commit_result, lab, sub, tree,
                                                   result.summary, None)
    lab.emit("subtask_finished", iteration=sub.iteration, **fields)
    lab.sync_best()


async def _collect(lab: Lab, box: Sandbox) -> str:
    with tempfile.TemporaryDirectory(prefix="result-", dir=host_tmp(lab.run_dir)) as tmp:
        await box.get_dir("/workspace", Path(tmp))
        return await asyncio.to_thread(lab.workspace.write_tree, Path(tmp))


def role_timeout(lab: Lab) -> float:
    """How long a role may work: `role_timeout_s`, else 4 x the experiment's `timeout_s`."""
    given = lab.config.get("role_timeout_s")
    return float(given) if given else ROLE_TIMEOUT_FACTOR * lab.experiment.spec.resources.timeout_s


def keep_traceback(lab: Lab, sid: str, result: RoleResult) -> None:
    """A role that raised: its full traceback to artifacts/<sid>/ (the log keeps one line)."""
    if isinstance(result, RoleCrashed) and result.traceback:
        folder = lab.run_dir / "artifacts" / sid
        folder.mkdir(parents=True, exist_ok=True)
        (folder / TRACEBACK_FILE).write_text(result.traceback, encoding="utf-8",
                                             errors="backslashreplace")


def failed(lab: Lab, sub: Subtask, attempt: int, error: str) -> None:
    lab.emit("subtask_failed", iteration=sub.iteration, subtask_id=sub.id, role=sub.role,
             attempt=attempt, error=error)
