"""Agent code cannot break the run: processes that outlive their command, a child's OOM kill, and
sandboxes that die under a subtask cost at most that subtask, never the run, and never a pause
that every resume would repeat. Real `labcoat run` processes, real containers."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from labcoat.log import load_state, read_events
from labcoat.views.render import summary
from tests.loop.conftest import labcoat, make_experiment, run_dir_of
from tests.loop.test_resume import containers_of, start, wait_for_event

pytestmark = pytest.mark.docker

ONE_TRIAL = ["--max-iterations", "1", "--parallel", "1"]

# `setup` leaves a detached daemon (double fork, setsid, empty environment) that would write
# late.txt after `run` started; `run` leaves a loop that keeps swapping a file for a symlink in
# /workspace while its outputs are copied out.
LATE = "(setsid env -i sh -c 'sleep 1.5; echo late > /workspace/late.txt' >/dev/null 2>&1 &)"
CHURN = ("(setsid sh -c 'while :; do touch churn; rm -f churn; ln -s x churn; rm -f churn; "
         "done' >/dev/null 2>&1 </dev/null &)")


def test_processes_left_behind_die_with_their_command(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "daemons", roles=["engineer"], setup=LATE,
                          run=f"sleep 3; test ! -e late.txt && {CHURN} && python3 train.py")
    proc = labcoat("run", str(exp), *ONE_TRIAL, "--runs-dir", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    state = load_state(run_dir_of(proc))
    grades = [g for s in state.subtasks.values() for g in s.grades.values()]
    assert grades and all(g.ok for g in grades), [g.error for g in grades]


def test_a_childs_oom_kill_is_a_warning_not_a_failed_grade(tmp_path: Path) -> None:
    hog = "python3 -c \"a = b'x' * (1 << 30)\""
    exp = make_experiment(tmp_path / "oom", roles=["engineer"], run=f"{hog}; python3 train.py")
    proc = labcoat("run", str(exp), *ONE_TRIAL, "--runs-dir", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    run_dir = run_dir_of(proc)
    state = load_state(run_dir)
    grades = [g for s in state.subtasks.values() for g in s.grades.values()]
    assert grades and all(g.ok for g in grades), [g.error for g in grades]
    runs = [e for e in read_events(run_dir) if e.type == "sandbox_exec" and "[run]" in e.cmd]
    assert runs and all(not e.oom_killed and e.oom_kills == 1 for e in runs)
    assert "warning: 1 child process(es) OOM-killed" in summary(runs[0])
    timeline = labcoat("log", str(run_dir))
    assert "OOM-killed" in timeline.stdout


class ContainerKiller(threading.Thread):
    """Kills each container of the run in which `marker` runs, but the first `spare` of them:
    the engine answers throughout, only the sandboxes die."""

    def __init__(self, docker_client: Any, run_id: str, marker: str, spare: int) -> None:
        super().__init__(daemon=True)
        self.client, self.run_id, self.marker, self.spare = docker_client, run_id, marker, spare
        self.seen: set[str] = set()
        self.killed = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            for c in containers_of(self.client, self.run_id):
                if c.id not in self.seen and c.status == "running" and self._runs_marker(c):
                    self.seen.add(c.id)
                    if len(self.seen) > self.spare:
                        c.kill()
                        self.killed += 1

    def _runs_marker(self, container: Any) -> bool:
        try:
            return any(self.marker in " ".join(p) for p in container.top()["Processes"])
        except Exception:  # gone meanwhile
            return False


@pytest.mark.parametrize(("spare", "what"), [(0, "work"), (1, "grading")])
def test_a_sandbox_that_dies_twice_fails_its_subtask_not_the_run(
        tmp_path: Path, docker_client: Any, spare: int, what: str) -> None:
    exp = make_experiment(tmp_path / "dies", search_space={}, roles=["reproducer"],
                          run="sleep 8 && python3 train.py # KILL-ME")
    started = start(tmp_path / "out", "run", str(exp), *ONE_TRIAL, "--runs-dir",
                    str(tmp_path / "r"))
    run_dir = started.run_dir()
    wait_for_event(run_dir, "run_started")
    killer = ContainerKiller(docker_client, load_state(run_dir).run_id, "KILL-ME", spare)
    killer.start()
    try:
        code = started.proc.wait(timeout=300)
    finally:
        killer.stop.set()
        killer.join()
    assert code == 0, started.err.read_text()  # finished: neither paused nor failed
    assert killer.killed == 2  # the attempt and its one retry
    state = load_state(run_dir)
    sub = state.subtasks["it001-01"]
    if what == "work":
        assert sub.status == "failed" and "failed twice" in (sub.error or "")
    else:
        grade = sub.own_grade
        assert grade is not None and not grade.ok and "failed twice" in (grade.error or "")
    assert state.status == "finished"
