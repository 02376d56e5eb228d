"""One run's log, indexed for the viewer: read as it grows, verified, and kept small.

    index = RunIndex(run_dir)
    index.refresh()                 # reads only the lines added since the last refresh
    index.state                     # the fold (labcoat.log.fold), advanced batch by batch
    index.transcript(sid, 0, 50)    # a page of a subtask's model and tool calls, read back

Lines are verified by the log's own `Chain` (checksum chain, schema version, seq), the verifier
behind `read_log` and `LogReader`, one line at a time, so a 100 MB transcript is never held in
memory. The index keeps the fold, the plans, the graded points and, per subtask, where its
transcript and sandbox commands are in the file (offset, length and a hash of the line): a page
of them is read back on demand and checked against that hash. A torn or partial tail is left
unread as `labcoat log --follow` leaves it (a writer may still finish or repair it); a damaged
line stops the index there with the reader's own message in `problem`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from labcoat.errors import LabcoatError
from labcoat.log import LOG_NAME, RunState, fold
from labcoat.log import events as ev
from labcoat.log.lines import BadLine, Chain, TornTail, corrupt, torn_tail

TRANSCRIPT = frozenset({"llm_call", "tool_call", "llm_error"})
RESULTS = frozenset({"plan_proposed", "subtask_started", "subtask_finished", "subtask_failed",
                     "graded", "critique", "run_resumed"})
"""Event types that change what the run page draws (the chart, the tree, the plans)."""
T = TypeVar("T")
"""Event types that make up an agent's transcript."""
BATCH = 2000
"""Events folded at once while indexing, at most ..."""
BATCH_BYTES = 4 << 20
"""... and at most this many bytes of them (a log of 50 KB replies must not pile up)."""
READ_BUDGET_S = 0.25
"""How long one refresh reads at most (a big log is read over several; pages show progress)."""
MANAGER = "manager"
"""Transcript key prefix of the manager's calls (they belong to no subtask)."""


class Lines:
    """Where some lines of the log are: offset, length and an 8-byte hash of each."""

    def __init__(self) -> None:
        self.offsets = array("q")
        self.lengths = array("q")
        self.hashes = array("Q")

    def __len__(self) -> int:
        return len(self.offsets)

    def add(self, offset: int, raw: bytes) -> None:
        self.offsets.append(offset)
        self.lengths.append(len(raw))
        self.hashes.append(_hash(raw))


def _hash(raw: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big")


@dataclass(frozen=True)
class Plan:
    """A `plan_proposed` event (what the log held before it: `labcoat.views.web.digest`)."""

    seq: int
    ts: float
    iteration: int
    rationale: str
    subtasks: tuple[str, ...]


@dataclass(frozen=True)
class Point:
    """One `graded` event: a commit of a subtask scored with a seed."""

    seq: int
    ts: float
    subtask: str
    seed: int
    metric: float | None
    ok: bool


@dataclass
class Times:
    """When a subtask ran (its last attempt), and the seq of its `subtask_finished`."""

    started: float | None = None
    ended: float | None = None
    finished_seq: int | None = None


@dataclass
class _Pending:
    events: list[ev.EventBase] = field(default_factory=list)
    size: int = 0


class RunIndex:
    """The viewer's incremental, read-only index of one run directory."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.path = run_dir / LOG_NAME
        self.lock = threading.RLock()
        """Held while refreshing and while a page is built from the index."""
        self._chain = Chain(self.path, validate=False)
        self.state = RunState()
        self.plans: list[Plan] = []
        self.points: list[Point] = []
        self.times: dict[str, Times] = {}
        self.calls: dict[str, Lines] = {}
        """Transcript lines by subtask id (the manager's by `manager_key(iteration)`)."""
        self.execs: dict[str, Lines] = {}
        self.critiques: dict[str, list[ev.CritiqueEvent]] = {}
        """Each `critique` event, by the subtask it judged."""
        self.size = 0
        """The log's size at the last refresh (`behind`: what is still to be read)."""
        self.torn: TornTail | None = None
        self.problem: str | None = None
        """Why the log cannot be read past `events` lines (damage, newer schema, I/O)."""
        self.stamp: tuple[int, int] | None = None
        """Size and mtime of the log when `problem` was found (a new one means: read again)."""
        self.diffs: dict[tuple[str, str], str] = {}
        """Diffs already computed (commits never change)."""
        self._reader: threading.Thread | None = None
        self.version = 0
        """Counts the events that change results (plans, subtask ends, grades, critiques):
        what is drawn from them is kept until it moves (`memo`)."""
        self._memo: dict[str, tuple[tuple[object, ...], object]] = {}

    @property
    def events(self) -> int:
        return self._chain.seq

    @property
    def behind(self) -> int:
        """Bytes of the log not read yet (a torn tail not counted)."""
        torn = self.torn.dropped_bytes if self.torn else 0
        return max(self.size - self._chain.offset - torn, 0)

    def refresh(self, budget_s: float | None = READ_BUDGET_S) -> bool:
        """Read what was appended since the last call, for at most `budget_s` seconds (None:
        to the end); True when something new was read."""
        with self.lock:
            if self.problem is not None:
                return False
            before = (self.events, self.torn)
            deadline = None if budget_s is None else time.monotonic() + budget_s
            try:
                self._read_new(deadline)
            except (LabcoatError, OSError) as err:
                self.problem = str(err)
                self.stamp = _stamp(self.path)
            return (self.events, self.torn) != before or self.problem is not None

    def catch_up(self) -> None:
        """Read to the end of the log in the background, a budget at a time (pages built
        meanwhile show what was read so far). Does nothing when a reader already runs."""
        with self.lock:
            if self._reader is not None and self._reader.is_alive():
                return
            self._reader = threading.Thread(target=self._read_all, daemon=True,
                                            name=f"labcoat-view-index-{self.run_dir.name}")
            self._reader.start()

    def _read_all(self) -> None:
        while self.behind and self.problem is None and self.refresh():
            time.sleep(0.005)  # let a waiting page take the lock between budgets

    def _read_new(self, deadline: float | None) -> None:
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such log")
        self.size = self.path.stat().st_size
        if self.size < self._chain.offset:
            raise LabcoatError(f"{self.path} shrank to {self.size} bytes after "
                               f"{self._chain.offset} were read (repaired by hand?)")
        if self.size == self._chain.offset:
            self.torn = None
            return
        pending = _Pending()
        with open(self.path, "rb") as f:
            f.seek(self._chain.offset)
            try:
                self._take_lines(f, pending, deadline)
            finally:
                self._fold(pending)

    def _take_lines(self, f: BinaryIO, pending: _Pending, deadline: float | None) -> None:
        self.torn = None
        taken = 0
        while raw := f.readline():
            offset = self._chain.offset
            try:
                event = self._chain.take(raw)
            except BadLine as bad:  # a torn tail (a writer may still finish it) waits, as
                self.torn = torn_tail(raw + f.read(), self._chain)  # --follow leaves it
                if self.torn is None:
                    raise corrupt(self._chain, str(bad)) from None
                return
            self._absorb(event, offset, raw, pending)
            taken += 1
            if deadline is not None and taken % 256 == 0 and time.monotonic() > deadline:
                return  # the rest on the next refresh: a page never waits for a whole big log

    def _absorb(self, event: ev.EventBase, offset: int, raw: bytes, pending: _Pending) -> None:
        sid = getattr(event, "subtask_id", None)
        if event.type in TRANSCRIPT:
            key = sid or manager_key(event.iteration)
            self.calls.setdefault(key, Lines()).add(offset, raw)
        elif event.type == "sandbox_exec" and sid:
            self.execs.setdefault(sid, Lines()).add(offset, raw)
        elif isinstance(event, ev.PlanProposed):
            ids = tuple(str(s.get("id")) for s in event.subtasks)
            self.plans.append(Plan(event.seq, event.ts, event.iteration, event.rationale, ids))
        elif isinstance(event, ev.CritiqueEvent):
            self.critiques.setdefault(event.target, []).append(event)
        elif isinstance(event, ev.Graded):
            self.points.append(Point(event.seq, event.ts, event.subtask_id, event.seed,
                                     event.metric, event.ok))
        elif event.type in ("subtask_started", "subtask_finished", "subtask_failed") and sid:
            self._time(event, sid)
        if event.type in RESULTS:
            self.version += 1
        pending.events.append(event)
        pending.size += len(raw)
        if len(pending.events) >= BATCH or pending.size >= BATCH_BYTES:
            self._fold(pending)

    def _time(self, event: ev.EventBase, sid: str) -> None:
        times = self.times.setdefault(sid, Times())
        if event.type == "subtask_started":
            times.started, times.ended = event.ts, None
        else:
            times.ended = event.ts
            times.finished_seq = event.seq if event.type == "subtask_finished" else None

    def _fold(self, pending: _Pending) -> None:
        if pending.events:
            self.state = fold(pending.events, self.state)
            pending.events.clear()
            pending.size = 0

    def memo(self, name: str, key: tuple[object, ...], make: Callable[[], T]) -> T:
        """`make()`, kept while `key` (what it depends on) stays the same."""
        hit = self._memo.get(name)
        if hit is not None and hit[0] == key:
            return hit[1]  # type: ignore[return-value]
        value = make()
        self._memo[name] = (key, value)
        return value

    # --- reading lines back -----------------------------------------------------------------

    def transcript(self, key: str, start: int, count: int) -> list[ev.EventBase]:
        """Events `start` to `start + count` of a transcript (model and tool calls)."""
        return list(self._read(self.calls.get(key), start, count))

    def commands(self, sid: str, start: int, count: int) -> list[ev.EventBase]:
        """Events `start` to `start + count` of a subtask's sandbox commands."""
        return list(self._read(self.execs.get(sid), start, count))

    def _read(self, lines: Lines | None, start: int, count: int) -> Iterator[ev.EventBase]:
        if lines is None:
            return
        with open(self.path, "rb") as f:
            for i in range(max(start, 0), min(start + count, len(lines))):
                f.seek(lines.offsets[i])
                raw = f.read(lines.lengths[i])
                if _hash(raw) != lines.hashes[i]:
                    raise LabcoatError(f"{self.path}: the line at byte {lines.offsets[i]} "
                                       "changed after it was read; reload the page")
                yield _event(raw)


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def stale(index: RunIndex) -> bool:
    """True when the log changed since `index` found a problem (a fresh index may read it)."""
    return index.problem is not None and _stamp(index.path) != index.stamp


def manager_key(iteration: int) -> str:
    """Transcript key of the manager's calls while planning `iteration`."""
    return f"{MANAGER}@{iteration}"


def _event(raw: bytes) -> ev.EventBase:
    """An event from a line the index has verified before (its hash still matches)."""
    record: dict[str, Any] = json.loads(raw)
    record.pop("sum", None)
    event = ev.construct_event(record)
    return event if event is not None else ev.parse_event(record)
