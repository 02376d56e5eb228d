"""A person in the loop as the fold sees it, and what the schedule does with it: every state is
the fold of real events written through the real Journal (no Docker)."""

from __future__ import annotations

from pathlib import Path

from labcoat.agents.role import Subtask
from labcoat.log import Journal, load_state
from labcoat.orchestrator.planning import fresh_ids
from labcoat.orchestrator.schedule import (
    blocked,
    next_to_plan,
    ready,
    reviewable,
    startable,
)
from tests.steering.helpers import BASE, plan, start


def test_a_waiting_plan_blocks_its_subtasks_and_further_planning(tmp_path: Path) -> None:
    with Journal.open(tmp_path, "r", create=True) as j:
        start(j)
        ids = plan(j, 1, "reproducer", "engineer", awaiting=True)
        s = j.state
        assert ready(s) == [] and s.awaiting() == frozenset(ids)
        assert next_to_plan(s, depth=2) is None, "nothing new is planned while a plan waits"
        assert blocked(s) is not None and blocked(s).plan == s.pending_approval.plan
        j.append("approval_decided", plan=s.pending_approval.plan, decision="approved",
                 approved=[ids[0]], request="a" * 32)
        s = j.state
        assert [r.id for r in ready(s)] == [ids[0]]
        assert s.subtasks[ids[1]].status == "declined" and s.pending_approval is None
        assert "not approved" in (s.subtasks[ids[1]].error or "")
        assert next_to_plan(s, depth=2) == 2 and blocked(s) is None
        assert s.requests == {"a" * 32: s.last_seq}


def test_a_rejected_latest_plan_is_planned_again_under_fresh_ids(tmp_path: Path) -> None:
    with Journal.open(tmp_path, "r", create=True) as j:
        start(j)
        ids = plan(j, 1, "reproducer", "engineer", awaiting=True)
        j.append("approval_decided", plan=j.state.pending_approval.plan, decision="rejected",
                 reason="look at the data loader first", request="b" * 32)
        s = j.state
        assert s.iteration == 0 and 1 not in s.rationales, "a rejected plan is no iteration"
        assert next_to_plan(s, depth=1) == 1 and s.baseline is None
        assert all(s.subtasks[i].status == "declined" for i in ids)
        again = fresh_ids(s, [Subtask(id=f"it001-0{k}", iteration=1, role="engineer",
                                      instructions="x", base_commit=BASE) for k in (1, 2, 3)])
        assert [x.id for x in again] == ["it001-03", "it001-04", "it001-05"]
        rejected = s.approvals[next(iter(s.approvals))]
        assert rejected.declined == tuple(ids) and rejected.reason.startswith("look at")
        assert "engineer: do engineer things" in rejected.asked.values()


def test_a_rejected_review_closes_its_iteration(tmp_path: Path) -> None:
    with Journal.open(tmp_path, "r", create=True) as j:
        start(j)
        (sid,) = plan(j, 1, "engineer")
        j.append("subtask_started", subtask_id=sid, role="engineer", attempt=1, base_commit=BASE)
        j.append("subtask_failed", subtask_id=sid, role="engineer", attempt=1, error="boom")
        (review,) = plan(j, 1, "critic", awaiting=True)
        assert not reviewable(j.state, 1)
        j.append("approval_decided", plan=j.state.pending_approval.plan, decision="rejected",
                 reason="no", request="c" * 32)
        assert j.state.iteration == 1, "the iteration keeps its work; only the review went"
        assert reviewable(j.state, 1) and j.state.subtasks[review].status == "declined"


def test_notes_are_numbered_and_answered_by_a_plan(tmp_path: Path) -> None:
    with Journal.open(tmp_path, "r", create=True) as j:
        start(j)
        j.append("note_added", text="stop trying schedules", request="1" * 32)
        j.append("note_added", text="look at the data loader", request="2" * 32)
        assert [n.number for n in j.state.open_notes()] == [1, 2]
        plan(j, 1, "engineer", notes={"2": "the engineer reads the loader"})
        s = j.state
        assert [n.number for n in s.open_notes()] == [1]
        assert s.notes[1].answer == "the engineer reads the loader" and s.notes[1].answered_in == 1
        assert s.to_dict()["open_notes"] == 1


def test_a_stop_request_lasts_until_a_resume(tmp_path: Path) -> None:
    with Journal.open(tmp_path, "r", create=True) as j:
        start(j)
        ids = plan(j, 1, "engineer", "engineer")
        j.append("stop_requested", now=False, request="d" * 32)
        assert [r.id for r in ready(j.state)] == ids and startable(j.state) == [], \
            "nothing new starts once a stop is asked for"
        j.append("stop_requested", now=True, request="e" * 32)
        assert j.state.stop is not None and j.state.stop.now and len(j.state.stops) == 2
        j.append("run_paused", reason="stopped by request")
        j.append("run_resumed", pid=1)
        assert j.state.stop is None and len(j.state.stops) == 2
        assert [r.id for r in startable(j.state)] == ids
    assert load_state(tmp_path).stop is None


def test_a_cancelled_subtask_is_planned_again(tmp_path: Path) -> None:
    with Journal.open(tmp_path, "r", create=True) as j:
        start(j)
        (sid,) = plan(j, 1, "engineer")
        j.append("subtask_started", subtask_id=sid, role="engineer", attempt=1, base_commit=BASE)
        j.append("subtask_cancelled", subtask_id=sid, reason="stop --now")
        rec = j.state.subtasks[sid]
        assert rec.status == "planned" and rec.attempts == 1
        assert [r.id for r in ready(j.state)] == [sid]
