"""Snapshots of the fold: resuming from one gives exactly the state a full fold gives, and a
snapshot that does not match (damaged, truncated, stale, of another format or build) is
ignored, said so in the log, and replayed instead. Real files, real journals."""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from labcoat.agents.llm.wiring import replay_of
from labcoat.errors import RunLogCorrupt
from labcoat.log import Journal, SnapshotPolicy, read_events, read_state
from labcoat.log.snapshot import DIR_NAME, candidates
from labcoat.log.state import RunState, fold
from labcoat.views.render import summary

from .helpers import iteration, make_run, run_subtask, start

CORPUS = Path(__file__).parents[1] / "fixtures" / "logs"
EVERY = SnapshotPolicy(every_events=1, at_close=1)
"""A snapshot after every record (when none is being written) and at close."""
NONE = SnapshotPolicy(enabled=False)


def view(state: RunState) -> str:
    """Every field of the state (exact types, NaN-safe) and what the loop derives from it."""
    derived = (state.to_dict(), state.best, state.baseline, [s.id for s in state.unfinished()],
               state.iterations_without_improvement, state.as_of(1).to_dict())
    return repr(state) + repr(derived)


def full_fold(log: Path, scratch: Path) -> RunState:
    """The state a journal folds from the whole log, with no snapshot anywhere near it."""
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    shutil.copyfile(log, scratch / "log.jsonl")
    with Journal.open(scratch, snapshots=NONE) as journal:
        assert journal.snapshot is None
        return journal.state


def snapshots(run: Path) -> list[str]:
    return [p.name for _, p in candidates(run / DIR_NAME)]


def rich_run(run: Path, seed: int, iterations: int = 4,
             policy: SnapshotPolicy = NONE) -> Path:
    """A run with most of what the fold reads: plans, grades (one NaN), failures, critiques,
    model calls (one replayed), budget, pause, resume with overrides, a repaired torn tail."""
    rng = random.Random(seed)
    with Journal.open(run, "run-test", create=True, snapshots=policy) as j:
        start(j)
        for it in range(1, iterations + 1):
            iteration(j, it, rng, roles=("reproducer", "engineer") if it == 1 else
                      ("engineer", "engineer", "critic"))
            if it == 2:
                _extras(j, it, rng)
    with (run / "log.jsonl").open("ab") as f:
        f.write(b'{"v":1,"seq":')  # a torn tail: the next open sets it aside
    with Journal.open(run, snapshots=policy) as j:
        j.append("run_resumed", overrides={"budget_usd": 3.0}, pid=1)
        plan = j.append("plan_proposed", iteration=iterations + 1, subtasks=[
            {"id": "late", "iteration": iterations + 1, "role": "engineer",
             "instructions": "x", "base_commit": "c0", "seed": 1}])
        run_subtask(j, "late", "engineer", plan.id, rng)
    return run / "log.jsonl"


def _extras(j: Journal, it: int, rng: random.Random) -> None:
    j.append("graded", subtask_id=f"it{it:03d}-01", commit="c", seed=5, metrics={},
             metric=float("nan"), ok=False, error="diverged")
    j.append("critique", subtask_id=f"it{it:03d}-03", target=f"it{it:03d}-01",
             verdict="not_reproducible", reason="seed luck")
    j.append("subtask_failed", subtask_id=f"it{it:03d}-02", role="engineer", attempt=2,
             error="boom")
    j.append("llm_call", role="manager", model="m:x", request_hash="h-plan",
             response={"text": "again"}, replayed=True)
    j.append("budget_exhausted", kind="usd", limit=1.0, spent=1.2)
    j.append("run_paused", reason="budget")


# --- a snapshot gives the full fold -----------------------------------------------------------

@pytest.mark.parametrize("name", ["v0/basic", "v1/complete"])
def test_corpus_resumes_from_a_snapshot_to_the_full_fold(tmp_path: Path, name: str) -> None:
    run = tmp_path / "run"
    shutil.copytree(CORPUS / name, run)
    expected = full_fold(run / "log.jsonl", tmp_path / "full")
    with Journal.open(run, snapshots=EVERY):  # a snapshot of the whole log, at once
        pass
    assert len(snapshots(run)) == 1
    with Journal.open(run, snapshots=NONE) as journal:
        assert journal.snapshot == snapshots(run)[0]
        assert view(journal.state) == view(expected)
    contents = read_state(run)  # status and report start from it too
    assert contents.snapshot == snapshots(run)[0] and contents.count == expected.last_seq + 1
    assert view(contents.state) == view(fold(read_events(run)))


@pytest.mark.slow
def test_a_snapshot_at_any_line_plus_the_tail_is_the_full_fold(tmp_path: Path) -> None:
    log = rich_run(tmp_path / "run", 1)
    lines = log.read_bytes().splitlines(keepends=True)
    expected, by_reader = full_fold(log, tmp_path / "full"), fold(read_events(log.parent))
    assert expected.best is not None and expected.resumes == 1 and expected.repairs == 1
    for cut in sorted({1, 2, 3, len(lines) - 1, len(lines), *range(5, len(lines), 11)}):
        prefix = tmp_path / f"prefix{cut}"
        prefix.mkdir()
        (prefix / "log.jsonl").write_bytes(b"".join(lines[:cut]))
        with Journal.open(prefix, snapshots=EVERY):
            pass
        (name,) = snapshots(prefix)
        assert name == f"state-{cut - 1:012d}.snap"
        shutil.rmtree(log.parent / DIR_NAME, ignore_errors=True)
        shutil.copytree(prefix / DIR_NAME, log.parent / DIR_NAME)
        assert read_state(log.parent).snapshot == name
        assert view(read_state(log.parent).state) == view(by_reader), cut
        with Journal.open(log.parent, snapshots=NONE) as journal:
            assert journal.snapshot == name and journal.count == len(lines)
            assert view(journal.state) == view(expected), cut


def test_snapshots_written_while_appending_resume_to_the_full_fold(tmp_path: Path) -> None:
    policy = SnapshotPolicy(every_events=9, at_close=1, keep=3)
    log = rich_run(tmp_path / "run", 3, iterations=6, policy=policy)
    names = snapshots(log.parent)
    count = len(log.read_bytes().splitlines())
    assert 1 < len(names) <= 3 and names[0] == f"state-{count - 1:012d}.snap"  # close wrote it
    expected = full_fold(log, tmp_path / "full")
    for name in names:  # each one, newest first, as the newest
        with Journal.open(log.parent, snapshots=NONE) as journal:
            assert journal.snapshot == name
            assert view(journal.state) == view(expected)
        (log.parent / DIR_NAME / name).unlink()
    with Journal.open(log.parent, snapshots=NONE) as journal:  # none left: a full replay
        assert journal.snapshot is None and view(journal.state) == view(expected)


def test_the_default_cadence(tmp_path: Path) -> None:
    run = tmp_path / "run"
    make_run(run, iterations=3)  # a short run: replaying it is cheap, no snapshot
    assert not (run / DIR_NAME).exists()
    policy = SnapshotPolicy(every_events=50, at_close=20)
    with Journal.open(run, snapshots=policy) as journal:
        for n in range(60):
            journal.append("sandbox_exec", cmd=f"step {n}", returncode=0, duration_s=0.0)
        count = journal.count
    names = snapshots(run)
    assert names[0] == f"state-{count - 1:012d}.snap" and len(names) == 2  # periodic + close
    with Journal.open(run, snapshots=policy) as journal:
        journal.append("sandbox_exec", cmd="one more", returncode=0, duration_s=0.0)
    assert snapshots(run) == names  # 1 record past the newest: fewer than at_close


# --- a snapshot that does not match is ignored, and the log says so ---------------------------

def _header(snap: Path, **changes: object) -> None:
    head, _, payload = snap.read_bytes().partition(b"\n")
    snap.write_bytes(json.dumps({**json.loads(head), **changes}).encode() + b"\n" + payload)


def _flip(snap: Path, log: Path) -> None:
    data = bytearray(snap.read_bytes())
    data[-7] ^= 0x55
    snap.write_bytes(bytes(data))


def _keep_lines(log: Path, n: int) -> None:
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:n]))


def _rewrite(log: Path) -> None:
    other = rich_run(log.parent.parent / "other", 99, iterations=6)  # same run id, longer
    shutil.copyfile(other, log)


DAMAGE: dict[str, tuple[Callable[[Path, Path], None], str]] = {
    "corrupted": (_flip, "damaged: its bytes do not match its checksum"),
    "truncated": (lambda s, log: s.write_bytes(s.read_bytes()[:-40]), "truncated:"),
    "no header": (lambda s, log: s.write_bytes(b"\x00" * 64), "not a labcoat snapshot"),
    "future version": (lambda s, log: _header(s, version=2),
                       "snapshot format v2; this labcoat reads v1"),
    "another build": (lambda s, log: _header(s, build="0" * 32), "another labcoat build"),
    "lying header": (lambda s, log: _header(s, seq=3), "stale:"),
    "stale: log cut": (lambda s, log: _keep_lines(log, 20), "stale: the log ends before"),
    "stale: log rewritten": (lambda s, log: _rewrite(log), "stale: "),
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_a_bad_snapshot_falls_back_to_a_full_replay(tmp_path: Path, kind: str) -> None:
    damage, reason = DAMAGE[kind]
    log = rich_run(tmp_path / "run", 4, policy=SnapshotPolicy(every_events=10_000, at_close=1))
    name, *older = snapshots(log.parent)
    for other in older:  # the newest alone: a full replay when it is ignored
        (log.parent / DIR_NAME / other).unlink()
    snap = log.parent / DIR_NAME / name
    damage(snap, log)
    assert read_state(log.parent).snapshot is None  # a reader passes it over, and keeps it
    assert view(read_state(log.parent).state) == view(fold(read_events(log.parent)))
    assert snap.exists()
    with Journal.open(log.parent, snapshots=NONE) as journal:
        assert journal.snapshot is None
        said = journal.events[-1]
        assert said.type == "snapshot_ignored" and said.snapshot == name, said
        assert reason in said.reason, said.reason
        assert f"{name} (seq {said.snapshot_seq}) not used" in summary(said)  # labcoat log
        assert view(journal.state) == view(full_fold(log, tmp_path / "full"))
    assert not snap.exists()  # said once: the next resume does not say it again
    with Journal.open(log.parent) as journal:
        assert journal.events[-1].type == "snapshot_ignored" and journal.count == said.seq + 1


def test_an_older_snapshot_serves_when_the_newest_is_bad(tmp_path: Path) -> None:
    policy = SnapshotPolicy(every_events=10_000, at_close=1)
    log = rich_run(tmp_path / "run", 5, policy=policy)
    older = snapshots(log.parent)[0]
    with Journal.open(log.parent, snapshots=policy) as journal:
        for n in range(3):
            journal.append("sandbox_exec", cmd=f"late {n}", returncode=0, duration_s=0.0)
    newest = snapshots(log.parent)[0]
    assert snapshots(log.parent) == [newest, older]
    _flip(log.parent / DIR_NAME / newest, log)
    with Journal.open(log.parent, snapshots=NONE) as journal:
        assert journal.snapshot == older
        assert [e.snapshot for e in journal.events if e.type == "snapshot_ignored"] == [newest]
        assert view(journal.state) == view(full_fold(log, tmp_path / "full"))


def test_damage_in_the_tail_names_its_line(tmp_path: Path) -> None:
    log = rich_run(tmp_path / "run", 6, policy=SnapshotPolicy(every_events=10_000, at_close=1))
    with Journal.open(log.parent, snapshots=NONE) as journal:
        for n in range(3):
            journal.append("sandbox_exec", cmd=f"late {n}", returncode=0, duration_s=0.0)
        count = journal.count
    lines = log.read_bytes().splitlines(keepends=True)
    lines[-2] = lines[-2].replace(b"late 1", b"late 9")
    log.write_bytes(b"".join(lines))
    for opening in (lambda: Journal.open(log.parent), lambda: read_state(log.parent)):
        with pytest.raises(RunLogCorrupt, match=f"line {count - 1}: checksum mismatch"):
            opening()


# --- the replay index: what a resumed LLM brain replays, never all held ----------------------

def _replies(journal: Journal) -> dict[str, list[dict[str, object]]]:
    return {h: [dict(r) for r in rs] for h, rs in journal.logged_replies().items()}


def test_logged_replies_are_the_logged_calls_with_or_without_a_snapshot(tmp_path: Path) -> None:
    policy = SnapshotPolicy(every_events=10_000, at_close=1)
    log = rich_run(tmp_path / "run", 7, policy=policy)
    for round_ in range(2):  # the same request answered again: replies stay in log order
        with Journal.open(log.parent, snapshots=policy) as journal:
            for n in range(2):
                journal.append("llm_call", role="engineer", model="m:x", request_hash="h-dup",
                               response={"text": f"answer {round_}.{n}"})
    expected = replay_of(read_events(log.parent))
    assert [r["text"] for r in expected["h-dup"]] == ["answer 0.0", "answer 0.1", "answer 1.0",
                                                     "answer 1.1"]
    assert "h-plan" not in expected  # a replayed call is not a reply to replay again
    with Journal.open(log.parent, snapshots=NONE) as journal:
        assert journal.snapshot is not None and _replies(journal) == expected
        journal.append("llm_call", role="engineer", model="m:x", request_hash="h-new",
                       response={"text": "new"})
        assert _replies(journal) == {**expected, "h-new": [{"text": "new"}]}
    shutil.rmtree(log.parent / DIR_NAME)
    with Journal.open(log.parent, snapshots=NONE) as journal:
        assert journal.snapshot is None
        assert _replies(journal) == {**expected, "h-new": [{"text": "new"}]}
        replies = journal.logged_replies()["h-dup"]
        lines = log.read_bytes().splitlines(keepends=True)
        log.write_bytes(b"".join(lines[:5]) + b"".join(lines[-3:]))  # changed under the run
        with pytest.raises(RunLogCorrupt, match="no longer holds the model call"):
            replies[0]["text"]
