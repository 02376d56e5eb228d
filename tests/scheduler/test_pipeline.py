"""The pipeline on real runs: no iteration barrier, a blocking role that freezes nothing, and
the same outcome after 30 SIGKILLs at `--parallel 3`."""

from __future__ import annotations

import random
import signal
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from labcoat.log import EventBase, load_state, read_events
from tests.loop.conftest import labcoat, make_experiment, run_dir_of
from tests.loop.test_resume import containers_of, outcome, start

pytestmark = pytest.mark.docker

# Trials whose `x` is above 0.5 take seconds to run; the others are instant.
SLOW_WHEN_BIG = '''
import json, pathlib, time
p = pathlib.Path("params.json")
x = float(json.loads(p.read_text()).get("x", 0.1)) if p.exists() else 0.1
time.sleep(6 if x > 0.5 else 0)
pathlib.Path("outputs").mkdir(exist_ok=True)
pathlib.Path("outputs/x.txt").write_text(repr(x))
'''


def _index(events: list[EventBase], kind: str, sid: str) -> int:
    return next(e.seq for e in events if e.type == kind and getattr(e, "subtask_id", "") == sid)


def test_a_fast_subtask_is_graded_and_its_slot_reused_before_a_slow_sibling_ends(
        tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy", search_space={
        "x": {"type": "categorical", "choices": [0.2, 0.9]}}, roles=["engineer"])
    (exp / "workspace" / "train.py").write_text(textwrap.dedent(SLOW_WHEN_BIG))
    proc = labcoat("run", str(exp), "--max-iterations", "5", "--parallel", "2", "--seed", "3",
                   "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    events = read_events(run_dir_of(proc))
    state = load_state(run_dir_of(proc))
    slow = [s for s in state.subtasks.values() if s.subtask.get("params", {}).get("x") == 0.9]
    fast = [s for s in state.subtasks.values() if s.subtask.get("params", {}).get("x") == 0.2]
    assert slow and fast, "the seed must give both kinds of trial"
    overtaken = [(f.id, s.id) for s in slow for f in fast if f.iteration == s.iteration
                 and _index(events, "graded", f.id) < _index(events, "graded", s.id)]
    assert overtaken, "no fast trial was graded before its slow sibling"
    fast_id, slow_id = overtaken[0]
    started_between = [e for e in events if e.type == "subtask_started"
                       and _index(events, "graded", fast_id) < e.seq
                       < _index(events, "graded", slow_id)]
    assert started_between, "the freed slot waited for the slow sibling"


def test_a_role_that_blocks_fails_alone_while_its_siblings_are_graded(
        tmp_path: Path, test_plugin: str) -> None:
    exp = make_experiment(tmp_path / "toy", roles=[
        "reproducer", "engineer", "labcoat_test_plugin.sleeper:Sleeper"])
    started = time.monotonic()
    proc = labcoat("run", str(exp), "--max-iterations", "1", "--parallel", "3",
                   "--role-timeout", "3", "--runs-dir", str(tmp_path / "runs"), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 200  # not the hour the role sleeps
    events = read_events(run_dir_of(proc))
    state = load_state(run_dir_of(proc))
    sleeper = next(s for s in state.subtasks.values() if s.role.endswith(":Sleeper"))
    assert sleeper.status == "failed" and "timed out" in (sleeper.error or "")
    began, failed = (_index(events, "subtask_started", sleeper.id),
                     _index(events, "subtask_failed", sleeper.id))
    graded_meanwhile = [e for e in events if e.type == "graded" and began < e.seq < failed]
    assert graded_meanwhile, "nothing was graded while the role was blocked"
    assert state.status == "finished"


@pytest.mark.slow
def test_killed_thirty_times_at_parallel_3_ends_like_uninterrupted(
        tmp_path: Path, docker_client: Any) -> None:
    args = ["--max-iterations", "4", "--parallel", "3", "--seed", "11"]
    exp = make_experiment(tmp_path / "toy")
    ref = labcoat("run", str(exp), *args, "--runs-dir", str(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    expected = outcome(run_dir_of(ref))

    rng = random.Random(20261202)
    logs = tmp_path / "logs"
    proc = start(logs, "run", str(exp), *args, "--runs-dir", str(tmp_path / "killed"))
    run_dir = proc.run_dir()
    kills = 0
    while kills < 30 and proc.proc.poll() is None:
        time.sleep(rng.uniform(0.2, 3.0))
        if proc.proc.poll() is not None:
            break
        proc.proc.send_signal(signal.SIGKILL)
        proc.proc.wait()
        kills += 1
        proc = start(logs, "resume", str(run_dir))
    proc.proc.wait(timeout=900)
    for _ in range(3):  # the last resume may itself have been the one that finished
        if load_state(run_dir).status == "finished":
            break
        assert labcoat("resume", str(run_dir)).returncode == 0
    assert kills == 30, f"the run finished after only {kills} kills; make it longer"
    assert outcome(run_dir) == expected
    finished = Counter(e.subtask_id for e in read_events(run_dir) if e.type == "subtask_finished")
    assert max(finished.values()) == 1, f"a finished subtask ran again: {finished}"
    assert containers_of(docker_client, load_state(run_dir).run_id) == []
