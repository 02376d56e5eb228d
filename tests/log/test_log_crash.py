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


def _crash_once(run_dir: Path, rng: random.Random, seed: int) -> list[tuple[int, str]]:
    """Start a writer, SIGKILL it after a random number of acks (or during start-up)."""
    with subprocess.Popen([sys.executable, str(CHILD), str(run_dir), str(seed)],
                          stdout=subprocess.PIPE, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}) as proc:
        acks, rest = _kill_at_random(proc, rng)
    acks += [(int(s), e) for s, e in re.findall(r"^(\d+) ([0-9a-f]{32})$", rest, re.M)]
    return acks


def _kill_at_random(proc: subprocess.Popen[str], rng: random.Random,
                    ) -> tuple[list[tuple[int, str]], str]:
    assert proc.stdout is not None
    acks, wanted = [], rng.choice([0, 0, 1, 2, 5, 10, 20, 40, 80])
    if rng.random() < 0.15:
        time.sleep(rng.uniform(0.0, 0.25))  # somewhere in start-up / open / repair
    else:
        assert proc.stdout.readline().strip() == "ready"
        while len(acks) < wanted:
            seq, eid = proc.stdout.readline().split()
            acks.append((int(seq), eid))
        time.sleep(rng.uniform(0.0, 0.003))
    proc.send_signal(signal.SIGKILL)
    rest = proc.stdout.read()  # acks written to the pipe before the kill are still there
    proc.wait()
    return acks, rest


def _lane(run_dir: Path, seed: int, kills: int, errors: list[str]) -> None:
    rng, acked = random.Random(seed), []
    try:
        for k in range(kills):
            acked += _crash_once(run_dir, rng, seed * 1000 + k)
            if not (run_dir / "log.jsonl").exists():
                continue
            contents = read_log(run_dir)  # must always load
            assert contents.torn is None, f"kill -9 tore a line: {contents.torn}"
            ids = [e.id for e in contents.events]
            assert len(set(ids)) == len(ids)
            for seq, eid in acked:
                assert ids[seq] == eid, f"acknowledged record {seq} lost or changed"
    except Exception as err:  # reported by the test thread
        errors.append(f"lane {seed}: {err!r}")


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


def test_truncate_at_every_offset_of_last_3_records(tmp_path: Path, fast_dir: Path) -> None:
    log = make_run(tmp_path / "src", iterations=2)
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
            for i in range(10):
                journal.append("sandbox_exec", cmd=f"after {i}", returncode=0, duration_s=0.0)
        events = read_events(run)
        assert len(events) == kept + torn + 10 and events[-1].cmd == "after 9"
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
    data = make_run(tmp_path / "src", iterations=2).read_bytes()
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
    }
    expected = {"duplicate": "seq 3 where 4", "missing": "seq 4 where 3",
                "swapped": "seq 4 where 3", "blank": "blank line",
                "edited": "checksum mismatch"}
    for name, broken in cases.items():
        assert broken != lines
        log.write_bytes(b"".join(broken))
        with pytest.raises(RunLogCorrupt, match=f"line {4 if name != 'duplicate' else 5}: "
                                                f"{expected[name]}"):
            read_log(tmp_path / "run")
        with pytest.raises(RunLogCorrupt):
            Journal.open(tmp_path / "run")  # the writer refuses too; nothing is repaired
        assert log.read_bytes() == b"".join(broken)
