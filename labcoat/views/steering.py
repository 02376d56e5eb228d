"""A person in the loop, shown: notes, approvals (waiting and decided) and stop requests, for the
timeline (`SUMMARIES`), `labcoat status` (`status_lines`), the report (`report_lines`) and the
viewer (`labcoat.views.web.runpage`). Everything here reads the fold (`labcoat.log.steering`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from labcoat.log import RunState
from labcoat.log import events as ev
from labcoat.log.steering import Approval, Note, StopRequest
from labcoat.text import first_line, squash

NOTES_LISTED = 5
"""Notes `labcoat status` lists (the latest); the report and the viewer list every one."""


def clock(ts: float | None) -> str:
    """Local time for people, `-` without one."""
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _decided(e: ev.ApprovalDecided) -> str:
    if e.decision == "rejected":
        return f"rejected ({e.source}): {first_line(e.reason, 80)}"
    return f"approved ({e.source}): {', '.join(e.approved) or '-'}"


SUMMARIES: dict[str, Callable[[Any], str]] = {
    "note_added": lambda e: f"{first_line(e.text, 100)}",
    "approval_decided": _decided,
    "stop_requested": lambda e: "stop now: cancel the running subtasks" if e.now else
    "stop: start nothing new, then pause",
    "subtask_cancelled": lambda e: f"{e.subtask_id}: {first_line(e.reason, 80)}",
}
"""One-line summaries of the steering events (`labcoat.views.render` uses them)."""


def plan_waits(e: ev.PlanProposed) -> str:
    """What a plan's summary adds when some of its subtasks wait for a person."""
    if not e.awaiting:
        return ""
    return f" | awaiting approval ({e.gate}): {', '.join(e.awaiting)}"


def approval_text(a: Approval) -> str:
    """One line about a plan that waited: what waits, or what the person decided."""
    if a.pending:
        why = "--approve plans" if a.gate == "plans" else "worst-case spend"
        return f"iteration {a.iteration}: {', '.join(a.subtasks)} wait for approval ({why})"
    if a.decision == "rejected":
        return (f"iteration {a.iteration}: rejected {', '.join(a.subtasks)} (by {a.source}): "
                f"{squash(a.reason, 200)}")
    declined = f"; declined {', '.join(a.declined)}" if a.declined else ""
    return f"iteration {a.iteration}: approved {', '.join(a.approved)} (by {a.source}){declined}"


def note_text(n: Note) -> str:
    answer = (f" -> plan of iteration {n.answered_in}: {squash(n.answer, 200)}"
              if n.answer is not None else " (not acted on yet)")
    return f"note {n.number}: {squash(n.text, 200)}{answer}"


def stop_text(stop: StopRequest) -> str:
    return f"{'stop --now' if stop.now else 'stop'} at {clock(stop.ts)}"


def status_lines(state: RunState) -> list[str]:
    """`labcoat status` lines (none when no person took part)."""
    lines = []
    waiting = state.pending_approval
    if waiting is not None:
        lines.append(f"approval  WAITING: {approval_text(waiting)}; decide with `labcoat "
                     "approve RUN_DIR` [--only IDS] or `labcoat reject RUN_DIR --reason TEXT`")
    decided = [a for a in state.approvals.values() if not a.pending]
    lines += [f"decided   {approval_text(a)}" for a in decided[-NOTES_LISTED:]]
    if state.stop is not None:
        lines.append(f"stop      requested ({stop_text(state.stop)}); the run pauses once "
                     "nothing runs")
    if state.notes:
        open_ = (f"{len(state.open_notes())} not acted on yet" if state.brain != "search" else
                 "the search brain records notes; an LLM manager acts on them")
        lines.append(f"notes     {len(state.notes)} ({open_})")
        lines += [f"          {note_text(n)}" for n in state.notes[-NOTES_LISTED:]]
    return lines


def report_lines(state: RunState) -> list[str]:
    """The report's section about the person in the loop (none when no person took part)."""
    if not (state.notes or state.approvals or state.stops):
        return []
    lines = ["## A person in the loop", ""]
    lines += [f"- {clock(n.ts)} {note_text(n)}" for n in state.notes]
    lines += [f"- {clock(a.ts)} {approval_text(a)}" for a in state.approvals.values()]
    lines += [f"- {stop_text(s)}" for s in state.stops]
    return [*lines, ""]
