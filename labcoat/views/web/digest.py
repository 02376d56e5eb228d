"""What the log held when the manager made a plan: the baseline, the best result so far, how
many subtasks were graded and the latest results (the manager plans from a digest of these).

Computed for the plans a page shows, in one pass over the index's graded points and critique
times, so the index keeps no copy of the state per plan: `plan_digests(index, plans)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from labcoat.experiment.metric import sign
from labcoat.text import first_line, num
from labcoat.views.web.index import Plan, RunIndex
from labcoat.views.web.models import PlanDigest, shown

RECENT = 5
"""Latest results listed in a plan's digest."""
Metrics = dict[str, float | None]
"""Subtask -> its metric at its own seed (None: grading failed), in the order graded."""


def plan_digests(index: RunIndex, plans: Sequence[Plan]) -> list[PlanDigest]:
    """The digest of everything the log held before each of `plans` (in their order)."""
    by_seq: dict[int, PlanDigest] = {}
    order = {sid: i for i, sid in enumerate(index.state.subtasks)}
    pending = sorted({p.seq for p in plans})
    metrics: Metrics = {}
    points = iter(index.points)
    point = next(points, None)
    for seq in pending:
        while point is not None and point.seq < seq:
            _take(index, metrics, point.subtask, point.seed, point.metric, point.ok)
            point = next(points, None)
        by_seq[seq] = _digest(index, metrics, seq, order)
    return [by_seq[p.seq] for p in plans]


def _take(index: RunIndex, metrics: Metrics, sid: str, seed: int, metric: float | None,
          ok: bool) -> None:
    """One graded point: kept when it is at the subtask's own seed (a re-grade moves it last)."""
    s = index.state.subtasks.get(sid)
    if s is None or seed != s.seed:
        return
    metrics.pop(sid, None)
    metrics[sid] = metric if ok and metric is not None and not math.isnan(metric) else None


def _digest(index: RunIndex, metrics: Metrics, before: int, order: dict[str, int]) -> PlanDigest:
    best = _best(index, metrics, before, order)
    recent = list(metrics)[-RECENT:][::-1]
    return PlanDigest(
        events=before, best="-" if best is None else f"{num(best[1], 6)} ({shown(best[0])})",
        baseline=num(_baseline(index, metrics), 6, none="-"), graded=len(metrics),
        results=[shown(_line(index, sid, metrics[sid], before), 300) for sid in recent])


def verdict_before(index: RunIndex, sid: str, before: int) -> str | None:
    """The latest critic verdict on `sid` logged before `before`."""
    found = None
    for critique in index.critiques.get(sid, ()):
        if critique.seq < before:
            found = critique.verdict
    return found


def _best(index: RunIndex, metrics: Metrics, before: int,
          order: dict[str, int]) -> tuple[str, float] | None:
    """As `RunState.best`, at `before`: finished, graded, not refuted; ties to plan order."""
    direction = sign(index.state.direction)
    best: tuple[float, int, str, float] | None = None  # (signed metric, -plan order, id, metric)
    for sid, metric in metrics.items():
        times = index.times.get(sid)
        if metric is None or times is None or times.finished_seq is None \
                or times.finished_seq >= before \
                or verdict_before(index, sid, before) == "not_reproducible":
            continue
        key = (direction * metric, -order.get(sid, 0), sid, metric)
        if best is None or key[:2] > best[:2]:
            best = key
    return None if best is None else (best[2], best[3])


def _baseline(index: RunIndex, metrics: Metrics) -> float | None:
    """As `RunState.baseline`: the first reproducer's metric, if it was graded by then."""
    for s in index.state.subtasks.values():
        if s.role == "reproducer":
            return metrics.get(s.id)
    return None


def _line(index: RunIndex, sid: str, metric: float | None, before: int) -> str:
    s = index.state.subtasks.get(sid)
    role = s.role if s else "?"
    what = first_line((s.summary or str(s.subtask.get("instructions", ""))) if s else "", 120)
    verdict = verdict_before(index, sid, before)
    value = "grading failed" if metric is None else num(metric, 6)
    return f"{sid} {role}: {value}" + (f" [{verdict}]" if verdict else "") + f": {what}"
