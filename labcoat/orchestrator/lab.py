"""One run in progress: the log, the experiment, the workspace, the sandboxes, and the steps.

Every step reads the run state from the journal (the fold of log.jsonl) and appends events; the
LangGraph graph (`labcoat.orchestrator.graph`) only decides which step comes next. A killed run
therefore resumes by folding its log and asking the same question again.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labcoat.agents.base import RoleContext, RoleResult, Subtask
from labcoat.agents.manager import Plan
from labcoat.agents.registry import run_role_guarded
from labcoat.errors import LabcoatError, SandboxUnavailable, UnsafeOutputError
from labcoat.orchestrator.grading import Grader
from labcoat.orchestrator.spec import Experiment, trial_env
from labcoat.orchestrator.workspace import BEST_BRANCH, Workspace, subtask_branch
from labcoat.sandboxes.base import Sandbox, SandboxProvider

SUBTASK_EVENTS = frozenset({"sandbox_exec", "llm_call"})
"""Events a role may emit that carry its subtask id (filled in when the role leaves it out)."""
ROLE_TIMEOUT_FACTOR = 4
"""A role may take this many command timeouts before it is stopped."""


@dataclass
class Lab:
    """The run's moving parts, shared by the graph's nodes."""

    run_dir: Path
    journal: Any
    experiment: Experiment
    workspace: Workspace
    provider: SandboxProvider
    manager: Any
    roles: Any
    """The `RoleRegistry` (built-ins, plugins, the experiment's role files)."""
    progress: Any = None
    models: Callable[[str], Any] = lambda role: None
    """Model for a role (None with the search brain)."""
    started: float = field(default_factory=time.monotonic)
    semaphore: asyncio.Semaphore = field(init=False)
    """At most `parallel` subtasks (work or grading) at once; set from the run's config."""
    _best_commit: str | None = None
    """What `labcoat/best` points at, once read (None: not read yet)."""

    def __post_init__(self) -> None:
        self.semaphore = asyncio.Semaphore(int(self.config.get("parallel", 1)))
        self.grader = Grader(
            experiment=self.experiment, provider=self.provider, run_id=self.run_id,
            expected_hash=self.state.grader_hash, export=self.workspace.export, emit=self.emit,
            artifacts=self.run_dir / "artifacts")

    # -- state and events ------------------------------------------------------------------

    @property
    def state(self) -> Any:
        return self.journal.state

    @property
    def run_id(self) -> str:
        return str(self.state.run_id)

    @property
    def config(self) -> dict[str, Any]:
        return dict(self.state.config)

    def emit(self, type_: str, /, *, iteration: int | None = None, **fields: Any) -> Any:
        it = self.state.iteration if iteration is None else iteration
        event = self.journal.append(type_, iteration=it, **fields)
        if self.progress is not None:
            self.progress.on_event(event)
        return event

    def time_up(self) -> bool:
        limit = self.config.get("time_limit_s")
        return bool(limit) and time.monotonic() - self.started >= float(limit)

    # -- plan -------------------------------------------------------------------------------

    async def plan(self) -> Plan:
        iteration = self.state.iteration + 1
        plan = await self.manager.plan(self.state, iteration)
        if plan.subtasks:
            self.emit("plan_proposed", iteration=iteration, rationale=plan.rationale,
                      subtasks=[s.model_dump(mode="json") for s in plan.subtasks])
        return plan

    async def review(self) -> Plan:
        it = self.state.iteration
        plan = await self.manager.review(self.state, it)
        if plan.subtasks:
            self.emit("plan_proposed", iteration=it, rationale=plan.rationale,
                      subtasks=[s.model_dump(mode="json") for s in plan.subtasks])
        return plan

    # -- work: one subtask's role in its own sandbox --------------------------------------------

    async def work(self, sid: str) -> None:
        async with self.semaphore:
            await self._retrying(self._work, sid)

    async def _retrying(self, step: Callable[[str], Any], sid: str) -> None:
        """Run a step; when its sandbox died but the engine is up, run it once more in a fresh
        one (a re-run starts from the base commit, as after a resume). Engine down: raise."""
        try:
            await step(sid)
        except SandboxUnavailable:
            from labcoat.sandboxes.engine import ping

            await asyncio.to_thread(ping, 3.0)  # raises SandboxUnavailable when it is down
            await step(sid)

    async def _work(self, sid: str) -> None:
        rec = self.state.subtasks[sid]
        sub = Subtask.model_validate(rec.subtask)
        started = self.emit("subtask_started", iteration=sub.iteration, subtask_id=sid,
                            role=sub.role, attempt=rec.attempts + 1, base_commit=sub.base_commit)
        try:
            role = self.roles.get(sub.role)
        except LabcoatError as err:
            self._failed(sub, rec.attempts + 1, str(err))
            return
        box = await self._role_sandbox(role, sub)
        try:
            ctx = self._context(sub, box, started.id, role)
            result = await run_role_guarded(role, sub, ctx, self._role_timeout())
            await self._record(sub, rec.attempts + 1, box, result)
        finally:
            if box is not None:
                await box.aclose()

    def _role_timeout(self) -> float:
        return ROLE_TIMEOUT_FACTOR * float(self.experiment.spec.resources.timeout_s)

    async def _role_sandbox(self, role: Any, sub: Subtask) -> Sandbox | None:
        if not getattr(role, "uses_sandbox", True):
            return None
        spec = self.experiment.sandbox_spec(self.run_id, sub.id, env=trial_env(sub.params,
                                                                               sub.seed))
        box = await self.provider.create(spec)
        try:
            with tempfile.TemporaryDirectory(prefix="labcoat-base-") as tmp:
                await asyncio.to_thread(self.workspace.export, sub.base_commit, Path(tmp))
                await box.put_dir(Path(tmp), "/workspace")
        except BaseException:
            await box.aclose()
            raise
        return box

    def _context(self, sub: Subtask, box: Sandbox | None, parent: str, role: Any) -> RoleContext:
        def emit(type_: str, fields: Any) -> None:
            defaults = {"subtask_id": sub.id} if type_ in SUBTASK_EVENTS else {}
            self.emit(type_, iteration=sub.iteration, parent=parent, **(defaults | dict(fields)))

        async def grade(commit: str, seed: int) -> dict[str, float] | None:
            return await self.regrade(sub.target or sub.id, commit, seed, sub.iteration)

        return RoleContext(run_id=self.run_id, spec=self.experiment, sandbox=box, emit=emit,
                           grade=grade, state=self.state, model=self.models(sub.role),
                           limits=dict(self.config.get("limits", {})),
                           instructions=getattr(role, "instructions", ""))

    async def _record(self, sub: Subtask, attempt: int, box: Sandbox | None,
                      result: RoleResult) -> None:
        if not result.ok:
            self._failed(sub, attempt, result.error or "the role reported failure")
            return
        base_tree = await asyncio.to_thread(self.workspace.tree_of, sub.base_commit)
        try:
            tree = await self._collect(box) if (result.changes and box is not None) else base_tree
        except UnsafeOutputError as err:  # the role's doing, not the run's: fail the subtask
            self._failed(sub, attempt, f"its workspace cannot be taken: {err}")
            return
        fields: dict[str, Any] = dict(subtask_id=sub.id, role=sub.role, attempt=attempt,
                                      summary=result.summary, changed=tree != base_tree)
        if result.critique is not None:
            self.emit("critique", iteration=sub.iteration, subtask_id=sub.id,
                      **result.critique.model_dump(mode="json"))
            fields["critique"] = result.critique.model_dump(mode="json")
        if result.grade:
            fields["tree"] = tree
        elif tree != base_tree:
            fields["commit"] = await asyncio.to_thread(self._commit, sub, tree, result.summary,
                                                       None)
        self.emit("subtask_finished", iteration=sub.iteration, **fields)
        self.sync_best()

    async def _collect(self, box: Sandbox) -> str:
        with tempfile.TemporaryDirectory(prefix="labcoat-result-") as tmp:
            await box.get_dir("/workspace", Path(tmp))
            return await asyncio.to_thread(self.workspace.write_tree, Path(tmp))

    def _failed(self, sub: Subtask, attempt: int, error: str) -> None:
        self.emit("subtask_failed", iteration=sub.iteration, subtask_id=sub.id, role=sub.role,
                  attempt=attempt, error=error)

    # -- grade ------------------------------------------------------------------------------

    def needs_grading(self, rec: Any) -> bool:
        return rec.status == "finished" and rec.tree is not None and rec.seed not in rec.grades

    async def grade(self, sid: str) -> None:
        async with self.semaphore:
            await self._retrying(self._grade, sid)

    async def _grade(self, sid: str) -> None:
        rec = self.state.subtasks[sid]
        outcome = await self.grader.grade(rec.tree, subtask_id=sid, seed=rec.seed,
                                          iteration=rec.iteration)
        sub = Subtask.model_validate(rec.subtask)
        commit = await asyncio.to_thread(self._commit, sub, rec.tree, rec.summary, outcome)
        self._graded(sid, commit, rec.seed, outcome, rec.iteration)

    async def regrade(self, sid: str, commit: str, seed: int, iteration: int,
                      ) -> dict[str, float] | None:
        """Grade an existing commit at another seed (the critic); reuse a logged grade."""
        done = self.state.subtasks[sid].grades.get(seed)
        if done is not None and done.commit == commit:
            return dict(done.metrics) if done.ok else None
        outcome = await self.grader.grade(commit, subtask_id=sid, seed=seed, iteration=iteration)
        self._graded(sid, commit, seed, outcome, iteration)
        return dict(outcome.metrics) if outcome.ok else None

    def _graded(self, sid: str, commit: str, seed: int, outcome: Any, iteration: int) -> None:
        self.emit("graded", iteration=iteration, subtask_id=sid, commit=commit, seed=seed,
                  metrics=outcome.metrics, metric=outcome.metric, ok=outcome.ok,
                  error=outcome.error, duration_s=outcome.duration_s)
        folder = self.run_dir / "artifacts" / sid
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"metrics-seed{seed}.json").write_text(json.dumps(
            {"commit": commit, "seed": seed, "metrics": outcome.metrics, "error": outcome.error},
            indent=2) + "\n")
        self.sync_best()

    def _commit(self, sub: Subtask, tree: str, summary: str, outcome: Any) -> str:
        name = self.experiment.spec.metric.name
        if outcome is None:
            score = "not graded"
        elif outcome.ok:
            score = f"{name}={outcome.metric:.6g}"
        else:
            score = f"grading failed: {str(outcome.error)[:200]}"
        message = (f"{sub.id} {sub.role}: {score}\n\n{summary or sub.instructions}\n\n"
                   f"labcoat-run: {self.run_id}\nlabcoat-subtask: {sub.id}\n"
                   f"labcoat-role: {sub.role}\nlabcoat-seed: {sub.seed}\n")
        sha = self.workspace.commit(tree, parent=sub.base_commit, message=message)
        self.workspace.set_branch(subtask_branch(sub.id), sha)
        return sha

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

    # -- decide -----------------------------------------------------------------------------

    def decide(self) -> str | None:
        """Close the iteration; the reason to stop, or None to plan again."""
        st = self.state
        best = st.best
        previous = st.closed[-1].best_metric if st.closed else None
        improved = best is not None and (previous is None or _beats(best.metric, previous,
                                                                     st.direction))
        self.emit("iteration_closed", best_subtask=best.subtask if best else None,
                  best_metric=best.metric if best else None, improved=improved)
        return self.stop_reason()

    def stop_reason(self) -> str | None:
        st, cfg = self.state, self.config
        if st.iteration >= int(cfg.get("max_iterations", 1)):
            return f"reached max iterations ({st.iteration})"
        if self.time_up():
            return f"reached the time limit ({cfg.get('time_limit_s')} s)"
        patience = int(cfg.get("patience", 0) or 0)
        if patience and st.iterations_without_improvement >= patience:
            return f"no improvement for {patience} iteration(s)"
        return None

    def pause_for_time(self) -> None:
        """The time limit struck with work still planned: pause (resumable), never drop it."""
        limit = float(self.config.get("time_limit_s") or 0)
        spent = time.monotonic() - self.started
        self.emit("budget_exhausted", kind="time", limit=limit, spent=spent)
        self.emit("run_paused", reason=f"time limit of {limit:g} s reached mid-iteration; "
                  f"`labcoat resume {self.run_dir}` continues (with a new time window)")

    def finish(self, reason: str) -> None:
        best = self.state.best
        self.emit("run_finished", reason=reason, best_subtask=best.subtask if best else None,
                  best_commit=best.commit if best else None,
                  best_metric=best.metric if best else None)


def _beats(a: float, b: float, direction: str) -> bool:
    return a < b if direction == "minimize" else a > b


__all__ = ["Lab"]
