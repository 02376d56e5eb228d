"""`labcoat stop` and `labcoat note` against real runs (search brain, real Docker, SIGKILL): a
graceful stop lets the running subtask finish and be graded, then pauses (exit 3); `--now`
cancels it, removes its sandboxes, and it runs again at resume; a note survives a kill at any
moment and is recorded exactly once."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from labcoat.log import load_state, read_events
from tests.loop.conftest import LABCOAT, make_experiment
from tests.loop.test_resume import containers_of
from tests.steering.live import Live, cli, kinds, wait_for

pytestmark = pytest.mark.docker

SLOW = "sleep 3 && python3 train.py"
"""Every `run` (the reproducer's, and grading's) takes a few seconds: time to stop it."""


def run_args(exp: Path, tmp: Path) -> list[str]:
    return ["run", str(exp), "--runs-dir", str(tmp / "runs"), "--max-iterations", "2",
            "--parallel", "1"]


def test_stop_lets_the_running_subtask_finish_then_pauses(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy", run=SLOW)
    live = Live(tmp_path / "logs", *run_args(exp, tmp_path))
    run_dir = live.run_dir()
    wait_for(run_dir, "subtask_started")
    stop = cli("stop", str(run_dir))
    assert stop.returncode == 0 and "stop_requested" in stop.stdout, stop.stderr
    assert live.wait() == 3, live.err.read_text()
    assert "stopped by request" in live.err.read_text()
    events = read_events(run_dir)
    state = load_state(run_dir)
    assert state.status == "paused" and state.stop_reason == "stopped by request"
    asked = next(e.seq for e in events if e.type == "stop_requested")
    running = [e.subtask_id for e in events if e.type == "subtask_started"]
    assert running == ["it001-01"], "nothing started after the request"
    assert not [e for e in events if e.type == "subtask_started" and e.seq > asked]
    assert state.subtasks["it001-01"].status == "finished"
    assert state.subtasks["it001-01"].metric is not None, "it was graded"
    resumed = cli("resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    again = Counter(e.subtask_id for e in read_events(run_dir) if e.type == "subtask_started")
    assert again["it001-01"] == 1 and load_state(run_dir).status == "finished"


def test_stop_now_cancels_and_the_subtask_runs_again_at_resume(tmp_path: Path,
                                                                docker_client: Any) -> None:
    exp = make_experiment(tmp_path / "toy", run=SLOW)
    live = Live(tmp_path / "logs", *run_args(exp, tmp_path))
    run_dir = live.run_dir()
    wait_for(run_dir, "sandbox_leased")  # its sandbox exists
    stop = cli("stop", str(run_dir), "--now")
    assert stop.returncode == 0, stop.stderr
    assert live.wait() == 3, live.err.read_text()
    state = load_state(run_dir)
    assert state.stop_reason == "stopped by request"
    assert containers_of(docker_client, state.run_id) == [], "no sandbox left behind"
    cancelled = [e for e in read_events(run_dir) if e.type == "subtask_cancelled"]
    assert [e.subtask_id for e in cancelled] == ["it001-01"]
    assert state.subtasks["it001-01"].status == "planned"
    resumed = cli("resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    runs = [e for e in read_events(run_dir) if e.type == "subtask_started"
            and e.subtask_id == "it001-01"]
    assert [e.attempt for e in runs] == [1, 2]
    assert {e.base_commit for e in runs} == {state.base_commit}, "from its base commit"
    assert load_state(run_dir).subtasks["it001-01"].status == "finished"


def test_a_note_survives_a_kill_right_after_it_is_sent(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy", run=SLOW)
    live = Live(tmp_path / "logs", *run_args(exp, tmp_path))
    run_dir = live.run_dir()
    wait_for(run_dir, "subtask_started")
    note = subprocess.Popen([LABCOAT, "note", str(run_dir), "mind the data loader"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not any((run_dir / "inbox").glob("*.json")) and "note_added" not in kinds(run_dir):
        assert time.monotonic() < deadline, "the note was never sent"
        time.sleep(0.005)
    live.kill()  # SIGKILL as the note arrives: before, during or after the run takes it in
    out, err = note.communicate(timeout=60)
    assert note.returncode == 0, err
    resumed = cli("resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    notes = [e.text for e in read_events(run_dir) if e.type == "note_added"]
    assert notes == ["mind the data loader"], (out, notes)
    assert not any((run_dir / "inbox").glob("*.json"))
