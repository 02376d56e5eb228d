"""The run page's section about the person in the loop: notes, approvals, stop requests."""

from __future__ import annotations

from labcoat.log import RunState
from labcoat.log.steering import Approval, Note
from labcoat.views.steering import clock, stop_text
from labcoat.views.web.models import ApprovalRow, NoteRow, Steering, shown


def steering(state: RunState) -> Steering | None:
    """The section's data (None when no person took part)."""
    if not (state.notes or state.approvals or state.stops):
        return None
    return Steering(notes=[_note(n) for n in state.notes],
                    approvals=[_approval(a) for a in state.approvals.values()],
                    stops=[stop_text(s) for s in state.stops],
                    waiting=state.pending_approval is not None)


def _note(n: Note) -> NoteRow:
    return NoteRow(number=n.number, time=clock(n.ts), text=shown(n.text, 4000),
                   answer=None if n.answer is None else shown(n.answer, 4000),
                   answered_in=n.answered_in)


def _approval(a: Approval) -> ApprovalRow:
    status = "waiting" if a.pending else str(a.decision)
    return ApprovalRow(iteration=a.iteration, time=clock(a.ts), status=status, gate=a.gate,
                       subtasks=[shown(x, 200) for x in a.subtasks],
                       approved=[shown(x, 200) for x in a.approved],
                       declined=[shown(x, 200) for x in a.declined],
                       reason=shown(a.reason, 4000), source=a.source)
