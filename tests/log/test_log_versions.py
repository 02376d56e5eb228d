"""The fixture corpus: every schema version still reads; a newer one is refused."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from labcoat.agents.llm.wiring import replay_of
from labcoat.errors import RunLogVersionError
from labcoat.log import Journal, load_state, read_events, read_log
from labcoat.log import events as ev

CORPUS = Path(__file__).parents[1] / "fixtures" / "logs"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("run", sorted(p.parent.relative_to(CORPUS).as_posix()
                                       for p in CORPUS.glob("v*/*/log.jsonl")))
def test_every_version_in_the_corpus_reads(run: str) -> None:
    log = CORPUS / run / "log.jsonl"
    before = _digest(log)
    contents = read_log(log.parent)
    assert contents.torn is None and contents.events
    assert all(e.v == ev.SCHEMA_VERSION for e in contents.events)  # upgraded in memory
    assert load_state(log.parent).status == "finished"
    assert _digest(log) == before  # the file is left untouched


def test_v0_is_upgraded(tmp_path: Path) -> None:
    events = read_events(CORPUS / "v0" / "basic")
    exec_ = next(e for e in events if isinstance(e, ev.SandboxExec))
    assert exec_.returncode == 0 and exec_.parent is None
    shutil.copytree(CORPUS / "v0" / "basic", tmp_path / "run")
    with Journal.open(tmp_path / "run") as journal:  # resuming an old run appends v1 records
        assert journal.run_id == "run-v0"
        journal.append("run_resumed", pid=1, overrides={"max_iterations": 2})
    lines = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert lines[0].startswith('{"seq":0,') and '"v":0' in lines[0]
    assert lines[-1].startswith('{"v":1,"seq":7,')
    state = load_state(tmp_path / "run")
    assert state.status == "running" and state.config["max_iterations"] == 2


def test_newer_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RunLogVersionError, match=r"line 1: written with log schema v2; this "
                                                 r"labcoat reads v0 to v1\. Upgrade labcoat"):
        read_log(CORPUS / "future" / "v2")
    shutil.copytree(CORPUS / "future" / "v2", tmp_path / "run")
    before = _digest(tmp_path / "run" / "log.jsonl")
    with pytest.raises(RunLogVersionError):
        Journal.open(tmp_path / "run")
    assert _digest(tmp_path / "run" / "log.jsonl") == before


def test_v1_fixture_state() -> None:
    state = load_state(CORPUS / "v1" / "complete")
    assert state.metric_name == "accuracy" and state.direction == "maximize"
    assert state.baseline == 0.80
    assert state.best is not None and state.best.subtask == "it001-02"  # it002-01 excluded
    assert state.subtasks["it002-01"].verdict == "not_reproducible"
    assert sorted(state.subtasks["it002-01"].grades) == [0, 1, 2]
    assert state.subtasks["it002-02"].status == "failed"
    assert state.cost.total.unknown_cost_calls == 1 and state.cost.total.calls == 4
    assert state.budget is not None and state.budget.kind == "usd"
    assert [c.improved for c in state.closed] == [True, False]
    assert state.iterations_without_improvement == 1
    assert set(replay_of(read_events(CORPUS / "v1" / "complete"))) == {
        "req-it001-01", "req-it001-02", "req-it002-01", "req-it002-03"}
