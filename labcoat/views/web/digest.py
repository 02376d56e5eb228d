"""What the log held when the manager made a plan: the baseline, the best result so far, how
many subtasks were graded and the latest results (the manager plans from a digest of these).

Computed for the plans a page shows, from the index's graded points and critique times, so the
index keeps no copy of the state per plan: `plan_digest(index, plan)`.
"""

from __future__ import annotations

import math

from labcoat.experiment.metric import beats
from labcoat.log import SubtaskState
from labcoat.text import first_line, num
from labcoat.views.web.index import Plan, RunIndex
from labcoat.views.web.models import PlanDigest, shown

RECENT = 5
"""Latest results listed in a plan's digest."""


def plan_digest(index: RunIndex, plan: Plan) -> PlanDigest:
    """The digest of everything the log held before `plan`."""
    metrics = _own_metrics(index, plan.seq)
    best = _best(index, metrics, plan.seq)
    baseline = _baseline(index, metrics)
    recent = list(metrics)[-RECENT:][::-1]
    return PlanDigest(
        events=plan.seq, best="-" if best is None else f"{num(best[1], 6)} ({shown(best[0])})",
        baseline=num(baseline, 6, none="-"), graded=len(metrics),
        results=[shown(_line(index, sid, metrics[sid], plan.seq), 300) for sid in recent])


def _own_metrics(index: RunIndex, before: int) -> dict[str, float | None]:
    """Each subtask graded at its own seed before `before`: its metric (None: failed), in the
    order they were graded (a re-grade moves it to the end)."""
    subtasks = index.state.subtasks
    out: dict[str, float | None] = {}
    for p in index.points:
        if p.seq >= before:
            break
        s = subtasks.get(p.subtask)
        if s is None or p.seed != s.seed:
            continue
        out.pop(p.subtask, None)
        ok = p.ok and p.metric is not None and not math.isnan(p.metric)
        out[p.subtask] = p.metric if ok else None
    return out


def verdict_before(index: RunIndex, sid: str, before: int) -> str | None:
    """The latest critic verdict on `sid` logged before `before`."""
    found = None
    for critique in index.critiques.get(sid, ()):
        if critique.seq < before:
            found = critique.verdict
    return found


def _best(index: RunIndex, metrics: dict[str, float | None],
          before: int) -> tuple[str, float] | None:
    """As `RunState.best`, at `before`: finished, graded, not refuted; ties to plan order."""
    state, best = index.state, None
    order = {sid: i for i, sid in enumerate(state.subtasks)}
    for sid, metric in sorted(metrics.items(), key=lambda item: order.get(item[0], 0)):
        times = index.times.get(sid)
        finished = times is not None and times.finished_seq is not None \
            and times.finished_seq < before
        if metric is None or not finished or verdict_before(index, sid, before) == \
                "not_reproducible":
            continue
        if beats(metric, best[1] if best else None, state.direction):
            best = (sid, metric)
    return best


def _baseline(index: RunIndex, metrics: dict[str, float | None]) -> float | None:
    """As `RunState.baseline`: the first reproducer's metric, if it was graded by then."""
    for s in index.state.subtasks.values():
        if s.role == "reproducer":
            return metrics.get(s.id)
    return None


def _line(index: RunIndex, sid: str, metric: float | None, before: int) -> str:
    s: SubtaskState | None = index.state.subtasks.get(sid)
    role = s.role if s else "?"
    what = first_line((s.summary or str(s.subtask.get("instructions", ""))) if s else "", 120)
    verdict = verdict_before(index, sid, before)
    value = "grading failed" if metric is None else num(metric, 6)
    return f"{sid} {role}: {value}" + (f" [{verdict}]" if verdict else "") + f": {what}"
