"""`labcoat note` and `labcoat stop` against one real run, resumed three times (search brain, real
Docker, SIGKILL): a note survives a kill right after it is sent and is recorded exactly once;
`stop --now` cancels the running subtask, removes its sandboxes, and it runs again from its base
commit at resume; a graceful stop lets the running subtask finish and be graded, then pauses
(exit 3); the last resume goes on to the end."""

from __future__ import annotations

import subprocess
import time
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
    return ["run", str(exp), "--runs-dir", str(tmp / "runs"), "--max-iterations", "1",
            "--parallel", "1"]


def started(run_dir: Path) -> list[str]:
    return [e.subtask_id for e in read_events(run_dir) if e.type == "subtask_started"]


def killed_right_after_a_note(tmp_path: Path, exp: Path) -> tuple[Path, str]:
    """Start the run, send a note while its first subtask works, SIGKILL the run as the note
    arrives (before, while or after the run takes it in); the note command's output."""
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
    live.kill()
    out, err = note.communicate(timeout=60)
    assert note.returncode == 0, err
    return run_dir, out


def test_note_kill_stop_now_stop_resume(tmp_path: Path, docker_client: Any) -> None:
    exp = make_experiment(tmp_path / "toy", run=SLOW)
    run_dir, said = killed_right_after_a_note(tmp_path, exp)
    sid = started(run_dir)[0]
    leases = kinds(run_dir).count("sandbox_leased")

    now = Live(tmp_path / "logs", "resume", str(run_dir))
    wait_for(run_dir, "subtask_started", 2)  # the killed subtask again
    wait_for(run_dir, "sandbox_leased", leases + 1)  # its new sandbox exists
    stop_now = cli("stop", str(run_dir), "--now")
    assert stop_now.returncode == 0 and "stop_requested" in stop_now.stdout, stop_now.stderr
    assert now.wait() == 3, now.err.read_text()
    state = load_state(run_dir)
    assert state.stop_reason == "stopped by request"
    assert containers_of(docker_client, state.run_id) == [], "no sandbox left behind"
    cancelled = [e.subtask_id for e in read_events(run_dir) if e.type == "subtask_cancelled"]
    assert cancelled == [sid] and state.subtasks[sid].status == "planned"

    graceful = Live(tmp_path / "logs", "resume", str(run_dir))
    wait_for(run_dir, "subtask_started", 3)
    stop = cli("stop", str(run_dir))
    assert stop.returncode == 0 and "stop_requested" in stop.stdout, stop.stderr
    assert graceful.wait() == 3, graceful.err.read_text()
    assert "stopped by request" in graceful.err.read_text()
    events = read_events(run_dir)
    asked = [e.seq for e in events if e.type == "stop_requested"][-1]
    assert not [e for e in events if e.type == "subtask_started" and e.seq > asked], \
        "nothing started after the request"
    state = load_state(run_dir)
    assert state.status == "paused" and state.stop_reason == "stopped by request"
    assert state.subtasks[sid].status == "finished" and state.subtasks[sid].metric is not None

    done = cli("resume", str(run_dir))
    assert done.returncode == 0, done.stderr
    events = read_events(run_dir)
    runs = [e for e in events if e.type == "subtask_started" and e.subtask_id == sid]
    assert [e.attempt for e in runs] == [1, 2, 3], "killed, cancelled, then finished; not again"
    assert {e.base_commit for e in runs} == {state.subtasks[sid].subtask["base_commit"]}
    notes = [e.text for e in events if e.type == "note_added"]
    assert notes == ["mind the data loader"], (said, notes)
    assert not any((run_dir / "inbox").glob("*.json"))
    assert load_state(run_dir).status == "finished"
