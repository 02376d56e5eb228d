"""The loop's grade step and what becomes of a result: graded, committed, branch-labelled.

`grade(lab, sid)` scores a finished subtask's tree at its own seed and commits it with the
metric in the message; `regrade` scores an existing commit at another seed (the critic's
reproductions), reusing a grade the log already holds.
"""

from __future__ import annotations

import asyncio
import json

from labcoat.agents.role import Subtask
from labcoat.orchestrator.grading import GradeOutcome
from labcoat.orchestrator.lab import Lab, retrying
from labcoat.orchestrator.sandboxing import check_disk_floor
from labcoat.text import inert
from labcoat.workspace import subtask_branch


async def grade(lab: Lab, sid: str) -> None:
    """Grade subtask `sid`'s result (retried once on a dead sandbox, then a failed grade)."""
    check_disk_floor(lab.run_dir, lab.provider)
    await retrying(lambda s: _grade(lab, s), sid, lambda s, why: _grade_failed(lab, s, why))


async def _grade_failed(lab: Lab, sid: str, error: str) -> None:
    rec = lab.state.subtasks[sid]
    assert rec.tree is not None, f"{sid} has no result tree to grade"
    outcome = GradeOutcome(error=error)
    sub = Subtask.model_validate(rec.subtask)
    commit = await asyncio.to_thread(commit_result, lab, sub, rec.tree, rec.summary, outcome)
    record_grade(lab, sid, commit, rec.seed, outcome, rec.iteration)


async def _grade(lab: Lab, sid: str) -> None:
    rec = lab.state.subtasks[sid]
    assert rec.tree is not None, f"{sid} has no result tree to grade"
    outcome = await lab.grader.grade(rec.tree, subtask_id=sid, seed=rec.seed,
                                     iteration=rec.iteration)
    sub = Subtask.model_validate(rec.subtask)
    commit = await asyncio.to_thread(commit_result, lab, sub, rec.tree, rec.summary, outcome)
    record_grade(lab, sid, commit, rec.seed, outcome, rec.iteration)


async def regrade(lab: Lab, sid: str, commit: str, seed: int, iteration: int,
                  ) -> dict[str, float] | None:
    """Grade an existing commit at another seed (the critic); reuse a logged grade."""
    done = lab.state.subtasks[sid].grades.get(seed)
    if done is not None and done.commit == commit:
        return dict(done.metrics) if done.ok else None
    outcome = await lab.grader.grade(commit, subtask_id=sid, seed=seed, iteration=iteration)
    record_grade(lab, sid, commit, seed, outcome, iteration)
    return dict(outcome.metrics) if outcome.ok else None


def record_grade(lab: Lab, sid: str, commit: str, seed: int, outcome: GradeOutcome,
                 iteration: int) -> None:
    """The `graded` event, the metrics file in artifacts/, and labcoat/best kept in step."""
    lab.emit("graded", iteration=iteration, subtask_id=sid, commit=commit, seed=seed,
             metrics=outcome.metrics, metric=outcome.metric, ok=outcome.ok,
             error=outcome.error, duration_s=outcome.duration_s)
    folder = lab.run_dir / "artifacts" / sid
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"metrics-seed{seed}.json").write_text(json.dumps(
        {"commit": commit, "seed": seed, "metrics": outcome.metrics, "error": outcome.error},
        indent=2) + "\n")
    lab.sync_best()


def commit_result(lab: Lab, sub: Subtask, tree: str, summary: str,
                  outcome: GradeOutcome | None) -> str:
    """Commit `tree` on the subtask's base, its score in the message; label its branch."""
    name = lab.experiment.spec.metric.name
    if outcome is None:
        score = "not graded"
    elif outcome.ok:
        score = f"{name}={outcome.metric:.6g}"
    else:
        score = f"grading failed: {str(outcome.error)[:200]}"
    message = (f"{sub.id} {sub.role}: {score}\n\n{summary or sub.instructions}\n\n"
               f"labcoat-run: {lab.run_id}\nlabcoat-subtask: {sub.id}\n"
               f"labcoat-role: {sub.role}\nlabcoat-seed: {sub.seed}\n")
    # The summary is the agent's words: `git log` prints messages raw (and a NUL would not
    # even reach git as an argument), so they are stored inert.
    message = inert(message)
    sha = lab.workspace.commit(tree, parent=sub.base_commit, message=message)
    lab.workspace.set_branch(subtask_branch(sub.id), sha)
    return sha
