"""What the log held when the manager made a plan: the baseline, the best result so far, how
many subtasks were graded and the latest results (the manager plans from a digest of these).

Computed for the plans a page shows by replaying the run's results (grades, subtask ends,
critiques) in log order once, so the index keeps no copy of the state per plan:
`plan_digests(index, plans)`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

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
    walk = _Walk(index)
    by_seq = {seq: walk.digest_before(seq) for seq in sorted({p.seq for p in plans})}
    return [by_seq[p.seq] for p in plans]


class _Walk:
    """The log's results replayed in order (grades at their own seed, subtask ends, critiques),
    keeping what `RunState.best` would choose from: finished, graded, not refuted."""

    def __init__(self, index: RunIndex) -> None:
        self.index = index
        state = index.state
        self.order = {sid: i for i, sid in enumerate(state.subtasks)}
        self.sign = sign(state.direction)
        self.reproducer = next((s.id for s in state.subtasks.values()
                                if s.role == "reproducer"), None)
        self.metrics: Metrics = {}
        self.finished: set[str] = set()
        self.verdicts: dict[str, str] = {}
        self.eligible: dict[str, float] = {}
        self.changes = iter(sorted(self._changes(), key=lambda c: c[0]))
        self.next = next(self.changes, None)

    def _changes(self) -> Iterator[tuple[int, str, str, float | None]]:
        """(seq, what, subtask, metric): "grade", "finish" and "critique" (verdict in what)."""
        subtasks = self.index.state.subtasks
        for p in self.index.points:
            s = subtasks.get(p.subtask)
            if s is not None and p.seed == s.seed:
                ok = p.ok and p.metric is not None and not math.isnan(p.metric)
                yield p.seq, "grade", p.subtask, p.metric if ok else None
        for sid, times in self.index.times.items():
            if times.finished_seq is not None:
                yield times.finished_seq, "finish", sid, None
        for target, critiques in self.index.critiques.items():
            for c in critiques:
                yield c.seq, "critique:" + c.verdict, target, None

    def digest_before(self, before: int) -> PlanDigest:
        while self.next is not None and self.next[0] < before:
            self._apply(*self.next)
            self.next = next(self.changes, None)
        best = max(self.eligible.items(), default=None,
                   key=lambda kv: (self.sign * kv[1], -self.order.get(kv[0], 0)))
        recent = list(self.metrics)[-RECENT:][::-1]
        baseline = self.metrics.get(self.reproducer) if self.reproducer else None
        return PlanDigest(
            events=before, best="-" if best is None else f"{num(best[1], 6)} ({shown(best[0])})",
            baseline=num(baseline, 6, none="-"), graded=len(self.metrics),
            results=[shown(_line(self.index, sid, self.metrics[sid], self.verdicts.get(sid)),
                           300) for sid in recent])

    def _apply(self, seq: int, what: str, sid: str, metric: float | None) -> None:
        if what == "grade":
            self.metrics.pop(sid, None)  # a re-grade moves it to the end
            self.metrics[sid] = metric
        elif what == "finish":
            self.finished.add(sid)
        else:
            self.verdicts[sid] = what.partition(":")[2]
        value = self.metrics.get(sid)
        if value is not None and sid in self.finished \
                and self.verdicts.get(sid) != "not_reproducible":
            self.eligible[sid] = value
        else:
            self.eligible.pop(sid, None)


def _line(index: RunIndex, sid: str, metric: float | None, verdict: str | None) -> str:
    s = index.state.subtasks.get(sid)
    role = s.role if s else "?"
    what = first_line((s.summary or str(s.subtask.get("instructions", ""))) if s else "", 120)
    value = "grading failed" if metric is None else num(metric, 6)
    return f"{sid} {role}: {value}" + (f" [{verdict}]" if verdict else "") + f": {what}"
