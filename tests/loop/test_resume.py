"""The resume promise, with real processes killed at random moments (SIGKILL) and Ctrl-C."""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import git
import pytest

from labcoat.log import load_state, read_events
from tests.loop.conftest import labcoat, make_experiment, run_dir_of
from tests.steering.live import Live

ARGS = ["--max-iterations", "3", "--parallel", "2", "--seed", "7"]


def outcome(run_dir: Path) -> tuple[dict[str, Any], float | None]:
    """Finished subtasks -> (role, tree of their commit, metric); and the best metric."""
    state = load_state(run_dir)
    with git.Repo(run_dir / "workspace") as repo:
        done = {s.id: (s.role, repo.commit(s.commit).tree.hexsha if s.commit else None, s.metric)
                for s in state.subtasks.values() if s.status == "finished"}
    return done, state.best.metric if state.best else None


def start(folder: Path, *args: str) -> Live:
    return Live(folder, *args)


def wait_for_event(run_dir: Path, kind: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run_dir / "log.jsonl").exists() and f'"type":"{kind}"' in \
                (run_dir / "log.jsonl").read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise AssertionError(f"no {kind} event within {timeout} s")


def containers_of(docker_client: Any, run_id: str) -> list[Any]:
    """The run's containers as listed (sparse: a full list inspects each one, and one removed
    in between fails the listing with 404)."""
    return docker_client.containers.list(all=True, sparse=True,
                                         filters={"label": f"labcoat.run_id={run_id}"})


@pytest.mark.slow
def test_killed_ten_times_ends_like_uninterrupted(tmp_path: Path, docker_client: Any) -> None:
    exp = make_experiment(tmp_path / "toy")
    ref = labcoat("run", str(exp), *ARGS, "--runs-dir", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    expected = outcome(run_dir_of(ref))

    rng = random.Random(20261123)
    logs = tmp_path / "logs"
    proc = start(logs, "run", str(exp), *ARGS, "--runs-dir", str(tmp_path / "killed"))
    run_dir = proc.run_dir()
    kills = 0
    while kills < 10:
        time.sleep(rng.uniform(0.5, 3.0))
        if proc.proc.poll() is not None:
            break
        proc.proc.send_signal(signal.SIGKILL)
        proc.proc.wait()
        kills += 1
        proc = start(logs, "resume", str(run_dir))
    proc.proc.wait(timeout=600)
    for _ in range(3):  # the last resume may itself have been the one that finished
        if load_state(run_dir).status == "finished":
            break
        assert labcoat("resume", str(run_dir)).returncode == 0
    assert kills >= 5, f"the run finished after only {kills} kills; make it longer"
    assert outcome(run_dir) == expected
    finished = Counter(e.subtask_id for e in read_events(run_dir) if e.type == "subtask_finished")
    assert max(finished.values()) == 1, f"a finished subtask ran again: {finished}"
    assert containers_of(docker_client, load_state(run_dir).run_id) == []


def test_ctrl_c_pauses_and_resume_finishes(tmp_path: Path, docker_client: Any) -> None:
    exp = make_experiment(tmp_path / "toy")
    proc = start(tmp_path / "logs", "run", str(exp), "--max-iterations", "2", "--parallel", "2",
                 "--runs-dir", str(tmp_path / "runs"))
    run_dir = proc.run_dir()
    wait_for_event(run_dir, "subtask_started")
    proc.proc.send_signal(signal.SIGINT)
    assert proc.proc.wait(timeout=60) == 130, proc.err.read_text()
    state = load_state(run_dir)
    assert state.status == "paused" and "SIGINT" in (state.stop_reason or "")
    assert containers_of(docker_client, state.run_id) == []
    again = labcoat("resume", str(run_dir))
    assert again.returncode == 0, again.stderr
    assert load_state(run_dir).status == "finished"


def test_sigterm_pauses(tmp_path: Path, docker_client: Any) -> None:
    exp = make_experiment(tmp_path / "toy")
    proc = start(tmp_path / "logs", "run", str(exp), "--runs-dir", str(tmp_path / "runs"))
    run_dir = proc.run_dir()
    wait_for_event(run_dir, "subtask_started")
    os.kill(proc.proc.pid, signal.SIGTERM)
    assert proc.proc.wait(timeout=60) == 130, proc.err.read_text()
    state = load_state(run_dir)
    assert state.status == "paused" and "SIGTERM" in (state.stop_reason or "")
    assert containers_of(docker_client, state.run_id) == []


@pytest.mark.docker
def test_second_writer_is_refused(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy")
    proc = start(tmp_path / "logs", "run", str(exp), "--runs-dir", str(tmp_path / "runs"))
    run_dir = proc.run_dir()
    wait_for_event(run_dir, "plan_proposed")
    second = labcoat("resume", str(run_dir), timeout=30)
    proc.proc.send_signal(signal.SIGINT)
    proc.proc.wait(timeout=60)
    assert second.returncode != 0
    assert f"run locked by pid {proc.proc.pid}" in second.stderr
