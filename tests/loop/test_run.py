"""End to end: `labcoat run` with the search brain on real Docker, real git, a real log."""

from __future__ import annotations

import json
from pathlib import Path

import git
import pytest

from labcoat.log import load_state, read_events
from tests.loop.conftest import labcoat, make_experiment, run_dir_of


@pytest.mark.docker
def test_search_run_end_to_end(toy: Path, tmp_path: Path) -> None:
    proc = labcoat("run", str(toy), "--max-iterations", "2", "--parallel", "2", "--seed", "3",
                   "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    run_dir = run_dir_of(proc)
    state = load_state(run_dir)
    assert state.status == "finished"
    roles = [s.role for s in state.subtasks.values()]
    assert roles.count("reproducer") == 1 and roles.count("engineer") == 4
    assert "critic" in roles
    assert state.baseline is not None and abs(state.baseline - 0.64) < 0.01  # x = 0.1
    best = state.best
    assert best is not None and best.metric > state.baseline
    with git.Repo(run_dir / "workspace") as repo:
        assert repo.commit("labcoat/best").hexsha == best.commit
        for s in state.subtasks.values():
            if s.role in ("reproducer", "engineer"):
                commit = repo.commit(f"labcoat/subtask-{s.id}")
                assert commit.hexsha == s.commit
                assert s.id in commit.message and s.role in commit.message
                assert "score=" in commit.message
        engineer = next(s for s in state.subtasks.values() if s.role == "engineer")
        blob = repo.commit(engineer.commit).tree["params.json"].data_stream.read()
    assert json.loads(blob) == engineer.subtask["params"]
    assert (run_dir / "report.md").is_file() and (run_dir / "metric.png").is_file()
    assert "baseline" in proc.stderr and "report:" in proc.stderr


@pytest.mark.docker
def test_critic_reviews_leader_with_new_seeds(toy: Path, tmp_path: Path) -> None:
    proc = labcoat("run", str(toy), "--max-iterations", "1", "--parallel", "2",
                   "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    events = read_events(run_dir_of(proc))
    critiques = [e for e in events if e.type == "critique"]
    assert critiques, "the critic reviewed nothing"
    first = critiques[0]
    assert len(first.metrics_by_seed) == 3  # own seed + 2 new ones
    assert first.verdict in ("reproducible", "not_reproducible")
    regrades = [e for e in events if e.type == "graded" and e.subtask_id == first.target]
    assert sorted(e.seed for e in regrades) == [0, 1, 2]


def test_bad_spec_is_refused_before_anything_starts(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "bad", metric={"name": "score", "direction": "upward"},
                          resources={"memory": "lots"})
    proc = labcoat("run", str(exp), "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "metric.direction" in proc.stderr and "resources.memory" in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.docker
def test_unknown_role_is_refused(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "roles", roles=["engineer", "enginer"])
    proc = labcoat("run", str(exp), "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 2
    assert "enginer" in proc.stderr and "did you mean 'engineer'" in proc.stderr


@pytest.mark.docker
def test_resume_of_finished_run_changes_nothing(toy: Path, tmp_path: Path) -> None:
    proc = labcoat("run", str(toy), "--max-iterations", "1", "--parallel", "1",
                   "--runs-dir", str(tmp_path / "runs"))
    run_dir = run_dir_of(proc)
    before = (run_dir / "log.jsonl").read_bytes()
    again = labcoat("resume", str(run_dir))
    assert again.returncode == 0 and "already finished" in again.stdout
    assert (run_dir / "log.jsonl").read_bytes() == before


@pytest.mark.docker
def test_plugin_role_gets_a_subtask(toy: Path, tmp_path: Path, test_plugin: str) -> None:
    exp = make_experiment(tmp_path / "plug", roles=["reproducer", "engineer", "ablator"])
    listed = labcoat("roles", str(exp))
    assert "ablator" in listed.stdout and "plugin labcoat-test-plugin" in listed.stdout
    proc = labcoat("run", str(exp), "--max-iterations", "2", "--parallel", "2",
                   "--pipeline-depth", "1", "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    run_dir = run_dir_of(proc)
    events = read_events(run_dir)
    started = [e for e in events if e.type == "subtask_started" and e.role == "ablator"]
    assert len(started) == 2  # one per iteration, on the best result so far
    done = {e.subtask_id: e for e in events if e.type == "subtask_finished"}
    # Iteration 1 plans before any result exists: the ablator sees the unchanged baseline.
    assert "nothing to ablate" in done[started[0].subtask_id].summary
    second = done[started[1].subtask_id]
    assert "ablated x=" in second.summary
    ablated = load_state(run_dir).subtasks[second.subtask_id]
    assert ablated.metric is not None and abs(ablated.metric - 0.64) < 0.01  # x back to 0.1


@pytest.mark.docker
def test_time_limit_pauses_mid_iteration_and_resume_continues(toy: Path, tmp_path: Path) -> None:
    proc = labcoat("run", str(toy), "--max-iterations", "3", "--time-limit", "2",
                   "--patience", "0", "--runs-dir", str(tmp_path / "runs"))
    run_dir = run_dir_of(proc)
    state = load_state(run_dir)
    if state.status == "finished":  # the limit struck between iterations: a clean end
        assert proc.returncode == 0 and "time limit" in (state.stop_reason or "")
        return
    assert proc.returncode == 3, proc.stderr
    assert state.status == "paused" and state.budget is not None and state.budget.kind == "time"
    assert state.unfinished(), "paused with nothing left to do"
    assert (run_dir / "report.md").is_file()
    again = labcoat("resume", str(run_dir), "--time-limit", "600")
    assert again.returncode == 0, again.stderr
    final = load_state(run_dir)
    assert final.status == "finished" and final.iteration == 3 and not final.unfinished()
