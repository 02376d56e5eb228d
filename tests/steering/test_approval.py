"""The plan-approval gate against real runs (search brain, real Docker): nothing of a plan starts
before a person decides; `--only`; the timeout (exit 4) and a resume that continues the same plan;
a decision taken while no process runs, then a live one from another shell; an inline answer on
a terminal."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from labcoat.log import load_state, read_events
from tests.loop.conftest import make_experiment
from tests.loop.test_resume import containers_of
from tests.steering.live import Live, cli, kinds, wait_for

pytestmark = pytest.mark.docker


def run_args(exp: Path, tmp: Path, *more: str) -> list[str]:
    return ["run", str(exp), "--runs-dir", str(tmp / "runs"), "--max-iterations", "1",
            "--parallel", "2", *more]


def started_before_decided(run_dir: Path) -> list[str]:
    out = []
    for e in read_events(run_dir):
        if e.type == "approval_decided":
            break
        if e.type == "subtask_started":
            out.append(e.subtask_id)
    return out


def test_nothing_starts_before_approval_and_only_the_named_run(tmp_path: Path,
                                                                 docker_client: Any) -> None:
    exp = make_experiment(tmp_path / "toy")
    first = cli(*run_args(exp, tmp_path, "--approve", "plans", "--approve-timeout", "2"))
    assert first.returncode == 4, first.stderr
    run_dir = Path(first.stdout.splitlines()[0])
    assert "waiting for a person" in first.stderr and "labcoat approve" in first.stderr
    state = load_state(run_dir)
    assert state.status == "paused" and state.waiting_for_person
    assert "subtask_started" not in kinds(run_dir)
    ids = list(state.pending_approval.subtasks)
    assert len(ids) == 3 and containers_of(docker_client, state.run_id) == []

    assert cli("approve", str(run_dir), "--only", f"{ids[0]},{ids[1]}").returncode == 0
    resumed = cli("resume", str(run_dir))  # the review now waits: the same 2 s, exit 4
    assert resumed.returncode == 4, resumed.stderr
    events = read_events(run_dir)
    assert not started_before_decided(run_dir)
    assert sorted({e.subtask_id for e in events if e.type == "subtask_started"}) == ids[:2]
    plans = [e for e in events if e.type == "plan_proposed"]
    assert [p.subtasks[0]["role"] for p in plans] == ["reproducer", "critic"], \
        "the approved plan went on; it was not proposed again"
    state = load_state(run_dir)
    assert state.subtasks[ids[2]].status == "declined"
    assert state.pending_approval is not None and state.pending_approval.gate == "plans"


def test_killed_while_waiting_approved_offline_then_resumed(tmp_path: Path) -> None:
    """SIGKILL while a plan waits; approve while no process runs; the resumed run runs that
    plan (not proposed again), and takes the next decision live, from another shell."""
    exp = make_experiment(tmp_path / "toy")
    live = Live(tmp_path / "logs", *run_args(exp, tmp_path, "--approve", "plans"))
    run_dir = live.run_dir()
    live.wait_err("decide with `labcoat approve")
    live.kill()  # SIGKILL while it waits
    assert live.err.read_text().count("decide with") == 1, "said once which command decides"
    approved = cli("approve", str(run_dir))
    assert approved.returncode == 0 and "approval_decided" in approved.stdout, approved.stderr
    resumed = Live(tmp_path / "logs", "resume", str(run_dir))
    wait_for(run_dir, "plan_proposed", 2)  # it ran the plan; its review waits now
    resumed.wait_err("decide with")
    rejected = cli("reject", str(run_dir), "--reason", "the gain is obvious")
    assert rejected.returncode == 0, rejected.stderr
    assert "by the process that holds the run" in rejected.stdout
    assert resumed.wait() == 0, resumed.err.read_text()
    events = read_events(run_dir)
    plans = [e for e in events if e.type == "plan_proposed"]
    assert [p.subtasks[0]["role"] for p in plans] == ["reproducer", "critic"]
    work = {s["id"] for s in plans[0].subtasks}
    assert {e.subtask_id for e in events if e.type == "graded"} == work
    assert not started_before_decided(run_dir)
    state = load_state(run_dir)
    assert [(a.decision, a.reason) for a in state.approvals.values()] == [
        ("approved", ""), ("rejected", "the gain is obvious")]
    assert state.status == "finished"


def test_an_inline_answer_on_a_terminal(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy")
    master, slave = os.openpty()
    try:
        live = Live(tmp_path / "logs", *run_args(exp, tmp_path, "--approve", "plans"),
                    stdin=slave)
        run_dir = live.run_dir()
        live.wait_err("approve? y = all")
        assert "decide with" not in live.err.read_text()
        os.write(master, b"it001-01, it001-02\n")
        wait_for(run_dir, "plan_proposed", 2)
        live.wait_err("approve? y = all", timeout=5)
        os.write(master, b"n\n")
        live.wait_err("why?")
        os.write(master, b"we trust this one\n")
        assert live.wait() == 0, live.err.read_text()
    finally:
        os.close(master)
        os.close(slave)
    state = load_state(run_dir)
    first, review = state.approvals.values()
    assert first.source == review.source == "terminal"
    assert first.approved == ("it001-01", "it001-02") and review.reason == "we trust this one"
    finished = [s.id for s in state.subtasks.values() if s.status == "finished"]
    assert finished == ["it001-01", "it001-02"] and state.status == "finished"
