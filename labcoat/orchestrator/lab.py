"""One run in progress: its log, experiment, workspace, sandboxes, brain and roles, shared by the
loop's steps (`planning`, `dispatch`, `results`). Every step reads the run state from the journal
(the fold of log.jsonl) and appends events; the scheduler only decides what comes next.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labcoat.agents.manager import Manager
from labcoat.agents.model import Model
from labcoat.agents.registry import RoleRegistry
from labcoat.errors import SandboxUnavailable
from labcoat.experiment import Experiment
from labcoat.log import EventBase, Journal, RunState
from labcoat.orchestrator.grading import Grader
from labcoat.orchestrator.sandboxing import clear_host_tmp
from labcoat.sandboxes.base import SandboxProvider
from labcoat.views.progress import Progress
from labcoat.workspace import BEST_BRANCH, Workspace


def no_model(role: str) -> Model | None:
    """The search brain's model lookup: no role has a model."""
    return None


@dataclass
class Lab:
    """The run's moving parts."""

    run_dir: Path
    journal: Journal
    experiment: Experiment
    workspace: Workspace
    provider: SandboxProvider
    manager: Manager
    roles: RoleRegistry
    """Built-ins, plugins and the experiment's role files."""
    progress: Progress | None = None
    models: Callable[[str], Model | None] = no_model
    """Model for a role (None with the search brain)."""
    started: float = field(default_factory=time.monotonic)
    _best_commit: str | None = None
    """What `labcoat/best` points at, once read (None: not read yet)."""

    def __post_init__(self) -> None:
        self.grader = Grader(
            experiment=self.experiment, provider=self.provider, run_id=self.run_id,
            expected_hash=self.state.grader_hash, export=self.workspace.export, emit=self.emit,
            artifacts=self.run_dir / "artifacts", scratch=clear_host_tmp(self.run_dir))

    @property
    def state(self) -> RunState:
        return self.journal.state

    @property
    def run_id(self) -> str:
        return str(self.state.run_id)

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.state.config)

    def emit(self, type_: str, /, *, iteration: int | None = None, **fields: Any) -> EventBase:
        """Append an event (at the current iteration unless given) and show it."""
        it = self.state.iteration if iteration is None else iteration
        event = self.journal.append(type_, iteration=it, **fields)
        if self.progress is not None:
            self.progress.on_event(event)
        return event

    def time_up(self) -> bool:
        limit = self.config.get("time_limit_s")
        return limit is not None and time.monotonic() - self.started >= float(limit)

    def sync_best(self) -> None:
        """Point `labcoat/best` (and the progress display) at the best result. Git is read once
        per run and written only when the best changes."""
        best = self.state.best
        if self.progress is not None:
            self.progress.set_best(best.subtask if best else None, best.metric if best else None)
        if best is None or not best.commit:
            return
        if self._best_commit is None:
            self._best_commit = self.workspace.branch_sha(BEST_BRANCH) or ""
        if self._best_commit != best.commit:
            self.workspace.set_branch(BEST_BRANCH, best.commit)
            self._best_commit = best.commit




GiveUp = Callable[[str, str], Awaitable[None]]
"""`give_up(sid, error)`: record that subtask `sid`'s step failed for good."""


async def retrying(step: Callable[[str], Awaitable[None]], sid: str, give_up: GiveUp) -> None:
    """Run a step; when its sandbox died but the engine is up, run it once more in a fresh one
    (a re-run starts from the base commit, as after a resume). When the fresh one dies too, the
    subtask fails (`give_up`): pausing the run instead would make every resume hit the same
    wall. Engine down: raise (the run pauses, resumable)."""
    try:
        await step(sid)
        return
    except SandboxUnavailable:
        await _engine_answers()
    try:
        await step(sid)
    except SandboxUnavailable as err:
        await _engine_answers()
        await give_up(sid, f"its sandbox failed twice, so the subtask is given up: {err}")


async def _engine_answers() -> None:
    """Return when the engine answers; else raise `SandboxUnavailable` (the run pauses)."""
    from labcoat.sandboxes.engine import ping

    await asyncio.to_thread(ping, 3.0)


__all__ = ["Lab", "no_model", "retrying"]
