"""kill -9 while a snapshot is being written loses nothing: real writer processes, killed the
moment their snapshot's temporary file appears (mid-write), again and again.

    python -m tests.log.test_snapshot_kill RUN_DIR SEED     the writer (this module's `child`)
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from labcoat.log import Journal, SnapshotPolicy, read_events, read_log, read_state
from labcoat.log import snapshot as snap
from labcoat.log.state import fold

from .test_snapshot import full_fold, view

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 6
POLICY = SnapshotPolicy(every_events=1, at_close=1)
"""A snapshot after every append (unless one is being written) and at every close."""


def say(*words: object) -> None:
    os.write(1, (" ".join(map(str, words)) + "\n").encode())


def child(run_dir: Path, seed: int) -> None:
    """Append forever, closing and reopening the journal now and then (each close writes a
    snapshot in this thread; appends start them in the background). Prints `<seq> <id>` once
    each append has returned."""
    rng, create = random.Random(seed), not (run_dir / "log.jsonl").exists()
    while True:
        with Journal.open(run_dir, "kill-run", create=create, snapshots=POLICY) as journal:
            if create:  # a state of a few MB, so that writing a snapshot takes a while
                create = False
                for it in range(1, 9):
                    journal.append("plan_proposed", iteration=it, subtasks=[],
                                   rationale=f"{it} " * 150_000)
            for _ in range(rng.randint(1, 40)):
                n = rng.randrange(10**6)
                event = (journal.append("llm_call", role="engineer", model="m",
                                        request_hash=f"h{n % 50}", response={"n": n})
                         if rng.random() < 0.5 else
                         journal.append("sandbox_exec", cmd=f"step {n}", returncode=0,
                                        duration_s=0.0, stdout_tail="é✓" * rng.randint(0, 99)))
                say(event.seq, event.id)


class Writer:
    """One child writer and what it acknowledged."""

    def __init__(self, run_dir: Path, seed: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.log.test_snapshot_kill", str(run_dir), str(seed)],
            stdout=subprocess.PIPE, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.lines: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def temp_file(self, directory: Path) -> bool:
        pattern = re.compile(rf"\.state-\d{{12}}\.{self.proc.pid}\.tmp")
        try:
            return any(pattern.fullmatch(name) for name in os.listdir(directory))
        except FileNotFoundError:
            return False

    def kill_mid_snapshot(self, directory: Path, after: int | None = None,
                          timeout_s: float = 60.0) -> bool:
        """SIGKILL the writer as soon as one of its snapshots is being written (`after`: one
        after it has written a whole snapshot past seq `after`); whether it was (its temporary
        file is still there after it died)."""
        deadline = time.monotonic() + timeout_s
        while after is not None and time.monotonic() < deadline:
            assert self.proc.poll() is None, "the writer died on its own"
            if any(seq > after for seq, _ in snap.candidates(directory)):
                break
            time.sleep(0.001)
        while not self.temp_file(directory) and time.monotonic() < deadline:
            assert self.proc.poll() is None, "the writer died on its own"
            time.sleep(0.0002)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=30)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return self.temp_file(directory)

    def acked(self) -> list[tuple[int, str]]:
        return [(int(seq), eid.decode()) for seq, eid in
                re.findall(rb"^(\d+) ([0-9a-f]{32})$", b"".join(self.lines), re.M)]


def _check_after_kill(run: Path, acked: list[tuple[int, str]]) -> None:
    """Every acknowledged record is there; no snapshot file a reader sees is broken; what a
    reader folds from the snapshots is the full fold."""
    ids = [e.id for e in read_log(run).events]
    for seq, eid in acked:
        assert seq < len(ids) and ids[seq] == eid, f"acknowledged record {seq} lost"
    restored, ignored = snap.restore(run / "log.jsonl")
    if ignored and _sources_changed():
        pytest.skip("labcoat.log's sources changed during the test (a shared checkout): the "
                    "writers' snapshots are rightly of another build")
    assert not ignored, ignored  # renamed into place whole, or not at all
    # None only before a first snapshot was whole (the first kill may land in it)
    assert restored is not None or not snap.candidates(run / snap.DIR_NAME)
    assert view(read_state(run).state) == view(fold(read_events(run)))


def _sources_changed() -> bool:
    before = snap.build_id()
    snap.build_id.cache_clear()
    return snap.build_id() != before


@pytest.mark.slow
def test_kill_9_while_a_snapshot_is_written_loses_nothing(tmp_path: Path) -> None:
    run, acked, mid_write = tmp_path / "run", list[tuple[int, str]](), 0
    for seed in range(ROUNDS):
        newest = max((seq for seq, _ in snap.candidates(run / snap.DIR_NAME)), default=-1)
        writer = Writer(run, seed)
        # every other round lets a snapshot end first: the log must also grow past a kill
        mid_write += writer.kill_mid_snapshot(run / snap.DIR_NAME,
                                              after=newest if seed % 2 else None)
        acked += writer.acked()
        _check_after_kill(run, acked)
    assert mid_write >= ROUNDS // 2, f"only {mid_write} of {ROUNDS} kills landed mid-write"
    assert len(acked) > ROUNDS
    expected = full_fold(run / "log.jsonl", tmp_path / "full")
    with Journal.open(run) as journal:
        assert journal.snapshot is not None
        assert not [e for e in journal.events if e.type == "snapshot_ignored"]
        assert view(journal.state) == view(expected)
    assert not [n for n in os.listdir(run / snap.DIR_NAME) if n.endswith(".tmp")]


if __name__ == "__main__":
    child(Path(sys.argv[1]), int(sys.argv[2]))
