"""The baseline comes first: no engineer starts before a needed reproduction fix exists.

A reproducer with a model (any brain but the search brain) may change the baseline: when it does
not run as given, the reproducer's result is the reproduction fix, and later work must start
from it (`labcoat.log.reproduction`). The scheduler plans ahead of results, so these pure
functions of the run state hold the rest back until that reproducer has settled (graded or
failed):

    fixing(state)              a reproducer that may still change the baseline is at work
    held(state, rec)           `rec` waits for it (everything but reproducers)
    with_baseline(view, state) a planning view that also shows the settled reproducer
    superseded(state)          work planned on the initial commit though a fix exists now

While `fixing` holds, nothing is planned either; iteration n >= 2 is then planned from the run as
iteration n - depth closed *plus* the settled reproducer, which is the same whatever the timing
(the reproducer has settled by then). Work planned beside the reproducer on the initial commit
(the LLM manager's iteration 1) never starts when a fix appears: the scheduler withdraws it.
Under the search brain nothing changes: it cannot change code, so its trials run beside the
reproducer as before.
"""

from __future__ import annotations

from dataclasses import replace

from labcoat.log import RunState, SubtaskState
from labcoat.log.reproduction import reproducer, reproduction_fix


def may_fix(state: RunState) -> bool:
    """The run's reproducer has a model, so it may change the baseline."""
    return bool(state.brain) and state.brain != "search"


def _settled(rec: SubtaskState) -> bool:
    """Failed, or finished and graded at its own seed (`schedule.done`, which imports this)."""
    return rec.status in ("failed", "declined") or (
        rec.status == "finished" and (rec.tree is None or rec.seed in rec.grades))


def fixing(state: RunState) -> bool:
    """A reproducer that may still change the baseline has not settled (graded or failed)."""
    rec = reproducer(state)
    return rec is not None and may_fix(state) and not _settled(rec)


def held(state: RunState, rec: SubtaskState) -> bool:
    """`rec` must not start yet: the baseline may still change under it."""
    return rec.role != "reproducer" and fixing(state)


def with_baseline(view: RunState, state: RunState) -> RunState:
    """`view` (a planning view) with the settled reproducer in it, as it stood when it settled
    (its own grade only), when a reproducer may have changed the baseline."""
    rec = reproducer(state)
    if rec is None or not may_fix(state) or not _settled(rec) or rec.id in view.subtasks:
        return view
    own = {seed: g for seed, g in rec.grades.items() if seed == rec.seed}
    first = replace(rec, grades=own, verdict=None, verdicts=())
    return replace(view, subtasks={rec.id: first, **view.subtasks})


def superseded(state: RunState) -> list[SubtaskState]:
    """Work planned on the initial commit that has not started, though a fix exists now."""
    if reproduction_fix(state) is None:
        return []
    return [s for s in state.subtasks.values()
            if s.status == "planned" and s.attempts == 0 and s.role not in ("reproducer", "critic")
            and s.subtask.get("base_commit") == state.base_commit]


def withdrawn_reason(state: RunState) -> str:
    """What a superseded subtask's `subtask_failed` says."""
    fix = reproduction_fix(state)
    where = f"{fix.id} ({(fix.commit or '')[:10]})" if fix else "the reproducer"
    return (f"withdrawn before it started: planned on the initial commit, which does not run; "
            f"the reproduction fix in {where} is the baseline now, and later work starts "
            "from it")
