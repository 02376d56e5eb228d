"""The writer: round trip, fold/reduce, validation, threads, fsync policy, redaction."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from labcoat.errors import RunLogError, RunLogWriteError
from labcoat.log import FileOps, Journal, load_state, read_events, read_log
from labcoat.log import events as ev
from labcoat.log.state import RunState, fold, reduce
from labcoat.log.writer import BadEvent

from .helpers import make_run, start


def test_round_trip_and_state(tmp_path: Path) -> None:
    make_run(tmp_path / "run")
    events = read_events(tmp_path / "run")
    assert [e.seq for e in events] == list(range(len(events)))
    assert events[0].type == "run_started" and events[-1].type == "run_finished"
    assert len({e.id for e in events}) == len(events)
    lines = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert all(json.loads(line)["sum"] for line in lines)
    state = load_state(tmp_path / "run")
    assert state.status == "finished" and state.iteration == 3 and len(state.subtasks) == 6
    assert state == fold(events)
    with Journal.open(tmp_path / "run") as journal:
        assert journal.state == state and journal.run_id == "run-test"


def test_reduce_is_pure_and_matches_fold(tmp_path: Path) -> None:
    make_run(tmp_path / "run")
    events = read_events(tmp_path / "run")
    state, snapshots = RunState(), []
    for event in events:
        before = repr(state)
        new = reduce(state, event)
        assert repr(state) == before, f"reduce mutated its input on {event.type}"
        snapshots.append((state, before))
        state = new
    assert state == fold(events)
    assert all(repr(s) == r for s, r in snapshots)
    assert fold(events[10:], fold(events[:10])) == state


def test_append_validates(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "run", "r1", create=True) as journal:
        with pytest.raises(BadEvent, match=r"unknown event type 'no_such_event'; the log knows "
                           r"these types: .*run_paused"):
            journal.append("no_such_event", reason="x")
        with pytest.raises(BadEvent, match=r"invalid 'graded' event: seed: Field required"):
            journal.append("graded", subtask_id="s", commit="c")  # seed missing
        with pytest.raises(TypeError, match="seq"):
            journal.append("run_paused", reason="x", seq=4)
        event = journal.append("sandbox_exec", cmd="x" * 10_000, returncode=1, duration_s=0.1,
                               stdout_tail="y" * 10_000)
        assert len(event.stdout_tail) == ev.TAIL_CAP and "chars cut" in event.stdout_tail
        assert len(event.cmd) == ev.CMD_CAP and event.stdout_tail.endswith("y" * 4000)
    events = read_events(tmp_path / "run")
    assert [e.type for e in events] == ["sandbox_exec"] and events[0] == event


def test_create_and_resume_guards(tmp_path: Path) -> None:
    make_run(tmp_path / "run")
    with pytest.raises(RunLogError, match="already holds a run"):
        Journal.open(tmp_path / "run", "run-test", create=True)
    with pytest.raises(RunLogError, match="belongs to run run-test"):
        Journal.open(tmp_path / "run", "other")
    with pytest.raises(RunLogError, match=r"no log\.jsonl"):
        Journal.open(tmp_path / "nothing")
    journal = Journal.open(tmp_path / "run")  # the failed opens released the lock
    journal.close()
    journal.close()
    with pytest.raises(RunLogWriteError, match="closed"):
        journal.append("run_paused", reason="x")


def test_threads_append_consecutively(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "run", "r1", create=True) as journal:
        start(journal)

        def work(k: int) -> None:
            for i in range(150):
                journal.append("sandbox_exec", subtask_id=f"t{k}", cmd=f"echo {i}",
                               returncode=0, duration_s=0.0)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert journal.state.sandbox_execs == 1200
    events = read_events(tmp_path / "run")
    assert [e.seq for e in events] == list(range(1201))
    assert load_state(tmp_path / "run").sandbox_execs == 1200


class CountingOps(FileOps):
    def __init__(self) -> None:
        self.fsyncs = 0

    def fsync(self, fd: int) -> None:
        super().fsync(fd)
        self.fsyncs += 1


def test_fsync_policy(tmp_path: Path) -> None:
    ops = CountingOps()
    journal = Journal.open(tmp_path / "run", "r1", create=True, ops=ops)
    start(journal)
    assert ops.fsyncs == 1  # committing: synced before append returned
    for _ in range(50):
        journal.append("sandbox_exec", cmd="ls", returncode=0, duration_s=0.0)
    assert ops.fsyncs == 1  # chatty: batched
    deadline = time.monotonic() + 3
    while ops.fsyncs == 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ops.fsyncs == 2  # the batch timer flushed within ~1 s
    journal.append("sandbox_exec", cmd="ls", returncode=0, duration_s=0.0)
    journal.close()
    assert ops.fsyncs == 3  # close flushes the pending batch


def test_host_secrets_never_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-very-secret-123")
    with Journal.open(tmp_path / "run", "r1", create=True) as journal:
        event = journal.append("sandbox_exec", cmd="env", returncode=0, duration_s=0.0,
                               stdout_tail="ANTHROPIC_API_KEY=sk-ant-very-secret-123\n")
        assert "very-secret" not in event.stdout_tail
    text = (tmp_path / "run" / "log.jsonl").read_text()
    assert "very-secret" not in text and "[REDACTED]" in text
    assert read_log(tmp_path / "run").events[0] == event


@pytest.mark.parametrize("shape", [str.upper, lambda k: k[:-1], lambda k: k[3:20].swapcase()],
                         ids=["upper", "last-cut", "fragment"])
def test_echoed_fragments_of_host_secrets_never_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: object) -> None:
    key = "sk-proj-Zq81xWc4Rv7Tn2Lm9Pk3Hs6Jd5"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    echoed = shape(key)  # type: ignore[operator]
    with Journal.open(tmp_path / "run", "r1", create=True) as journal:
        journal.append("llm_error", role="engineer", model="openai:gpt-4o",
                       request_hash="h", error="ModelAuthError",
                       message=f"Incorrect API key provided: {echoed}.")
    text = (tmp_path / "run" / "log.jsonl").read_text().lower()
    assert "[redacted]" in text
    assert not any(key.lower()[i:i + 12] in text for i in range(len(key) - 11)), text
    read_log(tmp_path / "run")  # still a valid, checksummed log


def test_nan_metric_round_trips(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "run", "r1", create=True) as journal:
        journal.append("graded", subtask_id="s", commit="c", seed=0,
                       metrics={"loss": float("nan")}, metric=float("inf"))
    (event,) = read_events(tmp_path / "run")
    assert event.metric == float("inf") and event.metrics["loss"] != event.metrics["loss"]


def test_write_failure_stops_appends(tmp_path: Path) -> None:
    class Flaky(FileOps):
        fail = False

        def fsync(self, fd: int) -> None:
            if self.fail:
                raise OSError(5, "Input/output error")
            super().fsync(fd)

    ops = Flaky()
    journal = Journal.open(tmp_path / "run", "r1", create=True, ops=ops)
    start(journal)
    ops.fail = True
    with pytest.raises(RunLogWriteError, match=r"fsync: Input/output error.*never retried"):
        journal.append("run_paused", reason="x")
    ops.fail = False
    with pytest.raises(RunLogWriteError, match="appends stopped"):
        journal.append("run_paused", reason="y")
    journal.close()
    # the write before the failed fsync may be there; the refused append is not
    reasons = [getattr(e, "reason", None) for e in read_events(tmp_path / "run")]
    assert reasons in ([None], [None, "x"])


def test_text_that_is_not_utf8_is_written_with_visible_escapes(tmp_path: Path) -> None:
    bad = b"caf\xe9 \xff".decode("utf-8", "surrogateescape") + " \ud800"  # what a model can send
    with Journal.open(tmp_path / "run", "r1", create=True) as journal:
        event = journal.append("sandbox_exec", cmd=bad, returncode=0, duration_s=0.0,
                               stdout_tail=bad)
    assert event.stdout_tail == "caf\\udce9 \\udcff \\ud800"
    assert read_log(tmp_path / "run").events == [event]
