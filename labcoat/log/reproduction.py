"""The reproduction, read from the fold: the baseline, its reproduction fix, and the claims.

    state.claims                     claim index -> ClaimCheck (`labcoat.log.claims`)
    claim_rows(state)                every claim of experiment.yaml, checked or not, in order
    reproducer(state)                the subtask that ran the baseline (iteration 1's reproducer)
    reproduction_fix(state)          that subtask when it had to change the code to make it run
    baseline_commit(state)           what the research builds on: the fix, else the initial commit
    baseline_failure(state)          why the baseline does not run, when its reproducer failed

A reproduction fix is the reproducer's own result when it changed the workspace: the reproducer
keeps its changes only when the baseline did not run as given (`labcoat.agents.builtin`). The
fix is the baseline, never an improvement: its metric is `state.baseline`, engineers start from
it, and the report shows its diff apart from the best result's. The claims are checked by a
second reproducer subtask (with `target`) on the baseline's result commit, so a fix is in place
before any claim is judged.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from labcoat.log.claims import ClaimCheck
from labcoat.log.state import RunState, SubtaskState


def claim_rows(state: RunState) -> list[ClaimCheck]:
    """Every claim of the experiment in order, with its latest verdict (`unchecked` before)."""
    rows = []
    for index, spec in enumerate(state.experiment.get("claims") or []):
        checked = state.claims.get(index)
        if checked is not None:
            rows.append(checked)
            continue
        value = float(spec.get("value", 0.0))
        rel = spec.get("rel_tolerance")
        tolerance = float(rel) * abs(value) if rel is not None else float(
            spec.get("tolerance") or 0.0)
        rows.append(ClaimCheck(claim=index, metric=str(spec.get("metric", "?")), value=value,
                               tolerance=tolerance, source=str(spec.get("source", ""))))
    return rows


def reproducer(state: RunState) -> SubtaskState | None:
    """The first reproducer that ran the baseline (a claims check has a `target`)."""
    return next((s for s in state.subtasks.values()
                 if s.role == "reproducer" and not s.subtask.get("target")), None)


def reproduction_fix(state: RunState) -> SubtaskState | None:
    """The reproducer's result when it changed the code to make the baseline run."""
    rec = reproducer(state)
    if rec is None or rec.status != "finished" or not rec.changed or not rec.commit:
        return None
    return rec


def baseline_commit(state: RunState) -> str:
    """The commit the research builds on: the reproduction fix, else the initial workspace."""
    fix = reproduction_fix(state)
    return fix.commit if fix is not None and fix.commit else state.base_commit


def baseline_failure(state: RunState) -> str | None:
    """Why the baseline does not run, when the reproducer that ran it failed."""
    rec = reproducer(state)
    return rec.error if rec is not None and rec.status == "failed" else None


def as_data(state: RunState) -> dict[str, Any]:
    """The reproduction as plain data (`labcoat status --json`): the claims as a list in
    experiment.yaml's order, the fix and the baseline's failure."""
    fix = reproduction_fix(state)
    return {
        "claims": [asdict(c) | {"seeds": c.seeds} for c in claim_rows(state)],
        "reproduction_fix": None if fix is None else {
            "subtask": fix.id, "commit": fix.commit, "summary": fix.summary},
        "baseline_commit": baseline_commit(state),
        "baseline_failure": baseline_failure(state),
    }
