"""Disk at the loop's level: the free-disk floor pauses a run before new work and a resume goes on;
a subtask that fills its sandbox's disk fails alone (no pause, space given back); the reproducer
runs the baseline where grading does; host-side copies live under the run directory."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from labcoat.log import load_state, read_events
from labcoat.sandboxes.disk import mounts_under
from tests.loop.conftest import labcoat, make_experiment, run_dir_of

pytestmark = pytest.mark.docker

FILL_UNLESS_BASELINE = '''
import json, pathlib, subprocess
p = pathlib.Path("params.json")
x = float(json.loads(p.read_text()).get("x", 0.1)) if p.exists() else 0.1
pathlib.Path("outputs").mkdir(exist_ok=True)
pathlib.Path("outputs/x.txt").write_text(repr(x))
if x != 0.1:  # every trial but the baseline tries to take 20 GB of the host
    subprocess.run(["fallocate", "-l", "20G", "big.bin"])
'''


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A private scratch root and temp dir, so that what the run leaves can be looked at."""
    (tmp_path / "scratch").mkdir(exist_ok=True)
    (tmp_path / "systmp").mkdir(exist_ok=True)
    return {"LABCOAT_SCRATCH_DIR": str(tmp_path / "scratch"), "TMPDIR": str(tmp_path / "systmp"),
            **extra}


def test_floor_pauses_before_work_and_resume_continues(toy: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    proc = labcoat("run", str(toy), "--max-iterations", "1", "--parallel", "2",
                   "--runs-dir", str(runs), env=_env(tmp_path, LABCOAT_MIN_FREE_DISK="100%"))
    assert proc.returncode == 3, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("labcoat: error:")]
    assert len(errors) == 1 and "floor" in errors[0] and "labcoat resume" in errors[0]
    assert "Traceback" not in proc.stderr
    run_dir = run_dir_of(proc)
    state = load_state(run_dir)
    assert state.status == "paused"
    assert not [e for e in read_events(run_dir) if e.type == "subtask_started"]
    leftover = run_dir / "tmp" / "labcoat-grade-killed"  # as a SIGKILLed grading leaves it
    leftover.mkdir(parents=True)
    resumed = labcoat("resume", str(run_dir), env=_env(tmp_path, LABCOAT_MIN_FREE_DISK="0"))
    assert resumed.returncode == 0, resumed.stderr
    assert load_state(run_dir).status == "finished"
    assert not leftover.exists() and not any((run_dir / "tmp").iterdir())
    assert not list((tmp_path / "systmp").glob("labcoat-*"))  # nothing of the run in /tmp


def test_a_subtask_that_fills_its_disk_fails_alone(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "filler", resources={"cpus": 0.5, "memory": "256m",
                                                          "timeout_s": 60, "disk": "64m"},
                          roles=["reproducer", "engineer"])
    (exp / "workspace" / "train.py").write_text(textwrap.dedent(FILL_UNLESS_BASELINE))
    env = _env(tmp_path)
    proc = labcoat("run", str(exp), "--max-iterations", "1", "--parallel", "2",
                   "--runs-dir", str(tmp_path / "runs"), env=env)
    assert proc.returncode == 0, proc.stderr  # finished: no pause, on this run or a resume
    state = load_state(run_dir_of(proc))
    assert state.status == "finished" and state.baseline is not None
    grades = [e for e in read_events(run_dir_of(proc)) if e.type == "graded" and not e.ok]
    assert grades and all("disk limit exceeded" in str(e.error) for e in grades)
    scratch = tmp_path / "scratch"
    assert not mounts_under(scratch)  # every image unmounted ...
    images = [p for p in scratch.rglob("*.disk") if not p.name.startswith("template-")]
    assert not images  # ... and deleted: the space went back


def test_reproducer_runs_an_executable_script_where_grading_does(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "script", run="./run.sh", roles=["reproducer"])
    script = exp / "workspace" / "run.sh"
    script.write_text("#!/bin/sh\nexec python3 train.py\n")
    script.chmod(0o755)
    proc = labcoat("run", str(exp), "--max-iterations", "1", "--runs-dir", str(tmp_path / "runs"),
                   env=_env(tmp_path))
    assert proc.returncode == 0, proc.stderr
    run_dir = run_dir_of(proc)
    state = load_state(run_dir)
    (repro,) = [s for s in state.subtasks.values() if s.role == "reproducer"]
    assert repro.status == "finished", repro
    finished = [e for e in read_events(run_dir) if e.type == "subtask_finished"]
    assert finished and not finished[0].changed  # its outputs/ stayed out of the commit
    assert state.baseline is not None and abs(state.baseline - 0.64) < 0.01
    assert os.access(script, os.X_OK)


def test_a_workspace_larger_than_the_disk_limit_is_refused_up_front(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "fat", resources={"cpus": 0.5, "memory": "256m",
                                                       "disk": "16m"})
    (exp / "workspace" / "data.bin").write_bytes(bytes(20 << 20))
    runs = tmp_path / "runs"
    proc = labcoat("run", str(exp), "--runs-dir", str(runs), env=_env(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert "resources.disk" in proc.stderr and "Traceback" not in proc.stderr
    assert not runs.exists() or not any(runs.iterdir())  # nothing written
