"""Crashes and damage with real files and real processes: kill -9, torn tails, byte flips."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from labcoat.errors import RunLogCorrupt
from labcoat.log import Journal, read_events, read_log

from .helpers import make_run


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on tmpfs when there is one: a thousand repairs fsync a lot."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm) as where:
        yield Path(where)


CHILD = Path(__file__).with_name("writer_child.py")
ROOT = Path(__file__).resolve().parents[2]


class Writers:
    """The writer server of one lane (`writer_child.py`): forks a writer per crash."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(CHILD)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.pid: int | None = None
        """The live writer (ours: the server reaps it only after we kill it)."""
        assert self.line() == "up"

    def line(self) -> str:
        assert self.proc.stdout is not None
        text = self.proc.stdout.readline().strip()
        assert not text.startswith("error"), text
        return text

    def start(self, run_dir: Path, seed: int) -> None:
        """Fork a writer appending to `run_dir`."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{run_dir} {seed}\n")
        self.proc.stdin.flush()
        first = self.line()
        assert first.startswith("pid "), first
        self.pid = int(first.split()[1])

    def kill(self) -> list[str]:
        """SIGKILL the writer; what it printed before it died."""
        assert self.pid is not None
        os.kill(self.pid, signal.SIGKILL)
        self.pid, rest = None, []
        while not (line := self.line()).startswith("exit"):
            rest.append(line)
        return rest

    def close(self) -> None:
        if self.pid is not None:
            os.kill(self.pid, signal.SIGKILL)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.stdout.read()
        self.proc.stdout.close()
        self.proc.wait(timeout=30)


def _crash_once(writers: Writers, run_dir: Path, rng: random.Random,
                seed: int) -> list[tuple[int, str]]:
    """Fork a writer, SIGKILL it after a random number of acks (or while it opens the log)."""
    writers.start(run_dir, seed)
    acks, wanted = [], rng.choice([0, 0, 1, 2, 5, 10, 20, 40, 80])
    if rng.random() < 0.15:
        time.sleep(rng.uniform(0.0, 0.03))  # somewhere in open / repair / the first appends
    else:
        assert writers.line() == "open"
        while len(acks) < wanted:
            seq, eid = writers.line().split()
            acks.append((int(seq), eid))
        time.sleep(rng.uniform(0.0, 0.003))
    rest = "\n".join(writers.kill())
    acks += [(int(s), e) for s, e in re.findall(r"^(\d+) ([0-9a-f]{32})$", rest, re.M)]
    return acks


def _lane(run_dir: Path, seed: int, kills: int, errors: list[str]) -> None:
    rng, acked = random.Random(seed), []
    writers = Writers()
    try:
        for k in range(kills):
            acked += _crash_once(writers, run_dir, rng, seed * 1000 + k)
            if not (run_dir / "log.jsonl").exists():
                continue
            # kill -9 may cut the record being written (the kernel stops a write between pages
            # for a fatal signal): a torn tail, set aside by the next open. It was never
            # acknowledged: every acknowledged record is there, at its place.
            contents = read_log(run_dir)  # must always load
            ids = [e.id for e in contents.events]
            assert len(set(ids)) == len(ids)
            for seq, eid in acked:
                assert seq < len(ids) and ids[seq] == eid, f"acknowledged record {seq} lost"
    except Exception as err:  # reported by the test thread
        errors.append(f"lane {seed}: {err!r}")
    finally:
        writers.close()


@pytest.mark.slow
def test_kill_9_at_random_points_loses_no_acknowledged_record(tmp_path: Path) -> None:
    errors: list[str] = []
    lanes = [threading.Thread(target=_lane, args=(tmp_path / f"run{i}", i + 1, 26, errors))
             for i in range(2)]
    for lane in lanes:
        lane.start()
    for lane in lanes:
        lane.join()
    assert not errors, errors
    for i in range(2):
        with Journal.open(tmp_path / f"run{i}") as journal:
            count = len(journal.events)
            assert count > 100  # the children really wrote
            for _ in range(10):
                journal.append("run_paused", reason="after crashes")
        assert len(read_events(tmp_path / f"run{i}")) == count + 10


def _record_starts(data: bytes) -> list[int]:
    return [0, *[i + 1 for i, b in enumerate(data) if b == 10][:-1]]


@pytest.mark.slow
def test_truncate_at_every_offset_of_last_3_records(tmp_path: Path, fast_dir: Path) -> None:
    log = make_run(tmp_path / "src", iterations=1)  # a short head: every cut reads it twice
    data = log.read_bytes()
    starts = _record_starts(data)
    first = starts[-3]
    run = fast_dir / "run"
    run.mkdir()
    repaired = 0
    for cut in range(first, len(data)):
        for old in run.iterdir():
            old.unlink()
        (run / "log.jsonl").write_bytes(data[:cut])
        kept = sum(1 for s in starts if s < cut and data.index(b"\n", s) < cut)
        torn = cut not in starts
        with Journal.open(run) as journal:
            assert len(journal.events) == kept + torn
            if torn:
                assert journal.events[-1].type == "log_repaired"
                assert journal.events[-1].dropped_bytes == cut - starts[kept]
                repaired += 1
            for i in range(3):
                journal.append("sandbox_exec", cmd=f"after {i}", returncode=0, duration_s=0.0)
        events = read_events(run)
        assert len(events) == kept + torn + 3 and events[-1].cmd == "after 2"
        if torn:
            broken = [p for p in run.iterdir() if ".broken-" in p.name]
            assert len(broken) == 1 and broken[0].read_bytes() == data[:cut]
    assert repaired == len(data) - first - 3  # every cut except the 3 line boundaries


@pytest.mark.parametrize("tail", [b"\0" * 300, b"\n", b"\n\n  \n", b'{"v":1,"seq":99,"ty\xc3',
                                  b'{"v":1,"s\0\0\0\0\0'])
def test_torn_tail_shapes_are_repaired(tmp_path: Path, tail: bytes) -> None:
    log = make_run(tmp_path / "run", iterations=1)
    good = log.read_bytes()
    log.write_bytes(good + tail)
    contents = read_log(tmp_path / "run")  # the reader reports, does not repair
    assert contents.torn is not None and contents.torn.offset == len(good)
    assert log.read_bytes() == good + tail
    with Journal.open(tmp_path / "run") as journal:
        assert journal.events[-1].type == "log_repaired"
        assert journal.state.repairs == 1
    assert log.read_bytes().startswith(good) and read_log(tmp_path / "run").torn is None


def test_1000_byte_flips_in_non_final_lines_are_refused(tmp_path: Path) -> None:
    data = make_run(tmp_path / "src", iterations=1).read_bytes()
    starts = _record_starts(data)
    end_of_non_final = starts[-1]  # flips land in lines 1..N-1, newline included
    rng = random.Random(1234)
    target = tmp_path / "log.jsonl"
    refused = 0
    for _ in range(1000):
        pos = rng.randrange(end_of_non_final)
        flipped = bytearray(data)
        flipped[pos] ^= rng.randrange(1, 256)
        target.write_bytes(bytes(flipped))
        line = sum(1 for s in starts if s <= pos)
        with pytest.raises(RunLogCorrupt) as err:
            read_log(target)
        message = str(err.value)
        assert f"log.jsonl line {line}: " in message, message
        assert f"head -n {line - 1} " in message
        refused += 1
    assert refused == 1000


def test_middle_damage_kinds_name_the_line(tmp_path: Path) -> None:
    log = make_run(tmp_path / "run", iterations=1)
    lines = log.read_bytes().splitlines(keepends=True)
    cases = {
        "duplicate": [*lines[:4], lines[3], *lines[4:]],
        "missing": lines[:3] + lines[4:],
        "swapped": [*lines[:3], lines[4], lines[3], *lines[5:]],
        "blank": [*lines[:3], b"\n", *lines[3:]],
        "edited": [*lines[:3], lines[3].replace(b'"iteration":1', b'"iteration":2'), *lines[4:]],
        # a damaged version number is damage, not a newer labcoat's line
        "version": [*lines[:3], lines[3].replace(b'"v":1,', b'"v":7,'), *lines[4:]],
    }
    expected = {"duplicate": "seq 3 where 4", "missing": "seq 4 where 3",
                "swapped": "seq 4 where 3", "blank": "blank line",
                "edited": "checksum mismatch", "version": "checksum mismatch"}
    for name, broken in cases.items():
        assert broken != lines
        log.write_bytes(b"".join(broken))
        with pytest.raises(RunLogCorrupt, match=f"line {4 if name != 'duplicate' else 5}: "
                                                f"{expected[name]}"):
            read_log(tmp_path / "run")
        with pytest.raises(RunLogCorrupt):
            Journal.open(tmp_path / "run")  # the writer refuses too; nothing is repaired
        assert log.read_bytes() == b"".join(broken)
