"""Snapshots of the fold: a long run resumes from the newest valid one plus the log's tail.

    <run_dir>/snapshots/state-<seq>.snap     the fold of log lines 0..seq (the newest 2 kept)

`Journal.open` and `load_state` start from the newest snapshot that passes every check below
and fold only the lines after it, so resuming a run of a million records reads one snapshot and
at most `every_events` lines. The log stays the only source of truth: a snapshot is derived
data, and deleting every one changes nothing but speed.

Format (version 1): one JSON header line (`head -1` shows it), then `size` bytes of MessagePack
of `{"state": RunState, "replies": {request hash: [line offsets]}}` (`labcoat.log.replies`):

    {"format":"labcoat-snapshot","version":1,"build":"...","run_id":"...","seq":N,"offset":O,
     "length":L,"sum":"<sum of line N>","prev":"<sum of line N-1>","size":S,"sha256":"..."}

MessagePack through msgspec, not pickle: decoding builds plain data and the state's dataclasses
from their type hints and never runs code. msgspec builds the typed state straight from the
bytes: JSON plus dataclasses built by pydantic took 3x as long and twice the memory, and JSON
has no NaN (a metric may be one).

Trust. A snapshot is used only when all of these hold; otherwise it is ignored (the next older
one is tried, then a full replay) and the writer records `snapshot_ignored` with the reason and
deletes it:

- `format` and `version` known: a newer labcoat's snapshot is never guessed at;
- `build` is this fold's: a hash of labcoat's version and of the sources of `labcoat.log` and
  `labcoat.experiment` (the fold and what it reads). A labcoat whose fold changed, even in a
  development checkout, replays instead of trusting a state it might not compute;
- the payload is whole (`size`) and undamaged (`sha256`);
- the anchor: the log holds, ending at byte `offset`, the very line `seq` (same `sum`, and the
  line verifies against `prev`). The sums chain every line to the one before, so the prefix is
  the one the snapshot folds; a log cut, repaired, rewritten or replaced fails here;
- the payload decodes into a `RunState` of that run whose `last_seq` is `seq`.

Lines before the anchor are not read again (that is the point): they were verified when they
were folded. A full read (`read_log`, `labcoat log`, `labcoat view`) still checks every line.

Writing. Atomic: a temporary file in the same folder, written whole, fsynced, renamed over the
final name, the folder fsynced. A writer killed meanwhile leaves a temporary file that no reader
looks at and the next writer removes. The log is fsynced first, so a snapshot never names lines
that a crash could take back.

Cadence (`SnapshotPolicy`). Resuming costs in records and bytes replayed, not in wall time, so
snapshots follow the log: one when `every_events` (10,000) records or `every_bytes` (64 MiB)
are past the newest, checked after each append and after open (the first resume of a long log
writes one at once), and one at close when at least `at_close` (1,000) are. Periodic ones are
written by a background thread from the state of that moment (a `RunState` is a value: appends
make new ones), so an append waits only for the log's fsync and a shallow copy of the reply
index. A snapshot that cannot be written (disk full, a state msgspec cannot encode) turns them
off for the session (`Journal.snapshot_error` says why); the log is not affected.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from labcoat import __version__
from labcoat.durable import fsync_path, write_synced
from labcoat.log.lines import Anchor, Chain, mismatch
from labcoat.log.replies import ReplyOffsets
from labcoat.log.state import RunState

if TYPE_CHECKING:
    import msgspec

__all__ = ["DIR_NAME", "SNAPSHOT_VERSION", "Ignored", "Restored", "SnapshotPolicy",
           "Snapshotter", "build_id", "restore", "snapshot_dir", "write"]

SNAPSHOT_VERSION = 1
"""v1: a JSON header line, then MessagePack of the state and the reply offsets."""
FORMAT = "labcoat-snapshot"
DIR_NAME = "snapshots"
_NAME = re.compile(r"state-(\d{12})\.snap")
_TEMP = re.compile(r"\.state-\d{12}\.\d+\.tmp")
_HEADER_MAX = 64 * 1024


class SnapshotPolicy(BaseModel):
    """When the writer snapshots the fold (the module docstring says why these numbers)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    """False: write none (those already there are still used)."""
    every_events: int = Field(10_000, ge=1)
    """Write one when this many records are past the newest snapshot..."""
    every_bytes: int = Field(64 * 2**20, ge=1)
    """... or this many bytes of log."""
    at_close: int = Field(1_000, ge=0)
    """At close, write one when at least this many records are past the newest (and one is)."""
    keep: int = Field(2, ge=1)
    """How many to keep, newest first (an older one serves when the newest is unusable)."""


class Header(BaseModel):
    """The first line of a snapshot file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["labcoat-snapshot"]
    version: int
    build: str
    run_id: str
    seq: int = Field(ge=0)
    """The last log line folded in."""
    offset: int = Field(ge=1)
    """Where that line ends: the size of the prefix folded."""
    length: int = Field(ge=1)
    sum: str
    prev: str
    size: int = Field(ge=0)
    """Bytes of payload after the header line."""
    sha256: str

    def anchor(self) -> Anchor:
        return Anchor(seq=self.seq, offset=self.offset, length=self.length, sum=self.sum,
                      prev=self.prev)


@dataclass(slots=True)
class Payload:
    state: RunState
    replies: ReplyOffsets = field(default_factory=dict)


@dataclass(frozen=True)
class Restored:
    """A snapshot that passed every check."""

    name: str
    anchor: Anchor
    state: RunState
    replies: ReplyOffsets


@dataclass(frozen=True)
class Ignored:
    """A snapshot that did not, and why."""

    name: str
    seq: int
    reason: str


class Unusable(Exception):
    """A snapshot failed a check; the message says which."""


def snapshot_dir(log: Path) -> Path:
    """The snapshot folder of the log file `log`."""
    return log.parent / DIR_NAME


@functools.cache
def build_id() -> str:
    """This labcoat's fold, as a hash of its version and the sources of `labcoat.log` and
    `labcoat.experiment` (an install without sources falls back to the version)."""
    digest = hashlib.sha256(f"{__version__} snapshot v{SNAPSHOT_VERSION}".encode())
    root = Path(__file__).resolve().parents[1]
    for package in ("log", "experiment"):
        for source in sorted((root / package).glob("*.py")):
            digest.update(source.name.encode() + b"\0" + source.read_bytes() + b"\0")
    return digest.hexdigest()[:32]


# --- reading --------------------------------------------------------------------------------

def candidates(directory: Path) -> list[tuple[int, Path]]:
    """(seq, path) of every snapshot file in `directory`, newest first."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = [(int(m.group(1)), directory / n) for n in names if (m := _NAME.fullmatch(n))]
    return sorted(found, reverse=True)


def restore(log: Path) -> tuple[Restored | None, list[Ignored]]:
    """The newest usable snapshot of the log file `log` (None: replay it all) and those found
    unusable on the way, newest first."""
    ignored: list[Ignored] = []
    for seq, path in candidates(snapshot_dir(log)):
        try:
            return load(path, log), ignored
        except FileNotFoundError:
            continue  # pruned by the writer meanwhile (a reader takes no lock)
        except Unusable as why:
            ignored.append(Ignored(path.name, seq, str(why)))
    return None, ignored


def load(path: Path, log: Path) -> Restored:
    """The snapshot at `path`, checked against the log file `log`; `Unusable` says why not."""
    try:
        with open(path, "rb") as f:
            header = _header(f.readline(_HEADER_MAX))
            _check_anchor(header, log)
            payload = f.read(header.size + 1)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise Unusable(f"unreadable: {err}") from None
    if len(payload) != header.size:
        raise Unusable(f"truncated: {len(payload)} of its {header.size} bytes"
                       if len(payload) < header.size else "damaged: longer than it says")
    if hashlib.sha256(payload).hexdigest() != header.sha256:
        raise Unusable("damaged: its bytes do not match its checksum")
    state, replies = _decode(header, payload)
    return Restored(path.name, header.anchor(), state, replies)


def _header(line: bytes) -> Header:
    try:
        data = json.loads(line)
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise Unusable("not a labcoat snapshot (no header line)")
    if data.get("version") != SNAPSHOT_VERSION:
        raise Unusable(f"snapshot format v{data.get('version')}; this labcoat reads "
                       f"v{SNAPSHOT_VERSION} (written by another labcoat version)")
    try:
        header = Header.model_validate(data)
    except ValidationError as err:
        raise Unusable(f"bad header: {err.errors()[0]['msg']}") from None
    if header.build != build_id():
        raise Unusable("written by another labcoat build (its fold may differ from this one)")
    if header.length > header.offset:
        raise Unusable("bad header: its last line is longer than the prefix")
    return header


def _check_anchor(header: Header, log: Path) -> None:
    """The log must hold, ending at `offset`, the line the snapshot names."""
    anchor, start = header.anchor(), header.offset - header.length
    before = 1 if start > 0 else 0  # the newline that ends the line before
    with open(log, "rb") as f:
        f.seek(start - before)
        raw = f.read(anchor.length + before)
    where = f"line {anchor.seq + 1} of the log"
    if len(raw) < anchor.length + before:
        raise Unusable(f"stale: the log ends before {where}, the last it folds (cut or "
                       "repaired since)")
    if before and raw[:1] != b"\n":
        raise Unusable(f"stale: no line of the log starts where {where} did")
    why = mismatch(raw[before:], anchor)
    if why is not None:
        raise Unusable(f"stale: {where} is not the line it folds up to ({why})")


def _decode(header: Header, payload: bytes) -> tuple[RunState, ReplyOffsets]:
    import msgspec

    try:
        with _gc_paused():
            data = _decoder().decode(payload)
    except (msgspec.DecodeError, TypeError) as err:  # TypeError: a state msgspec cannot type
        raise Unusable(f"does not decode: {err}") from None
    if data.state.last_seq != header.seq or data.state.run_id != header.run_id:
        raise Unusable(f"its state is of seq {data.state.last_seq} of run "
                       f"{data.state.run_id!r}, not what its header names")
    return data.state, data.replies


@functools.cache
def _decoder() -> msgspec.msgpack.Decoder[Payload]:
    import msgspec

    return msgspec.msgpack.Decoder(Payload)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Building a big state makes the cyclic collector walk it again and again (the whole
    heap on each full pass: twice the time). What is built holds no cycles to collect."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- writing (the journal's writer only: it holds the run lock) ----------------------------

def write(log: Path, anchor: Anchor, state: RunState, replies: ReplyOffsets, keep: int) -> Path:
    """Write the snapshot of the prefix ending at `anchor` atomically; keep the newest `keep`."""
    import msgspec

    payload = msgspec.msgpack.encode(Payload(state, replies))
    header = Header(format=FORMAT, version=SNAPSHOT_VERSION, build=build_id(),
                    run_id=state.run_id, seq=anchor.seq, offset=anchor.offset,
                    length=anchor.length, sum=anchor.sum, prev=anchor.prev, size=len(payload),
                    sha256=hashlib.sha256(payload).hexdigest())
    directory = snapshot_dir(log)
    if not directory.is_dir():
        directory.mkdir()
        fsync_path(directory.parent, directory=True)
    final = directory / f"state-{anchor.seq:012d}.snap"
    temp = directory / f".{final.stem}.{os.getpid()}.tmp"
    write_synced(temp, header.model_dump_json().encode() + b"\n", payload)
    os.replace(temp, final)
    fsync_path(directory, directory=True)
    for _, old in candidates(directory)[keep:]:
        old.unlink(missing_ok=True)
    return final


def remove(log: Path, names: list[str] | None = None) -> None:
    """Remove the named snapshots of `log`, or (None) every snapshot, and any temporary file a
    killed writer left."""
    directory = snapshot_dir(log)
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            if _TEMP.fullmatch(name) or (_NAME.fullmatch(name)
                                        and (names is None or name in names)):
                (directory / name).unlink(missing_ok=True)


class Snapshotter:
    """The writer's snapshots: when one is due, and writing it off the append path."""

    def __init__(self, log: Path, policy: SnapshotPolicy, newest: Anchor | None) -> None:
        self.log, self.policy = log, policy
        self.seq, self.offset = (newest.seq, newest.offset) if newest else (-1, 0)
        """The newest snapshot's anchor (written or being written)."""
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def due(self, chain: Chain) -> bool:
        """Whether a periodic snapshot is due after the chain's last line (never while one is
        being written: the next append asks again)."""
        p = self.policy
        busy = self._thread is not None and self._thread.is_alive()
        return (p.enabled and self.error is None and chain.seq > 0 and not busy
                and (chain.seq - 1 - self.seq >= p.every_events
                     or chain.offset - self.offset >= p.every_bytes))

    def start(self, anchor: Anchor, state: RunState, replies: ReplyOffsets) -> None:
        """Write a snapshot of the prefix ending at `anchor` in the background."""
        self.seq, self.offset = anchor.seq, anchor.offset
        self._thread = threading.Thread(target=self._write, args=(anchor, state, replies),
                                        name="labcoat-snapshot", daemon=True)
        self._thread.start()

    def finish(self, anchor: Anchor | None, state: RunState, replies: ReplyOffsets) -> None:
        """At close: let a snapshot in flight end, then write one when at least `at_close`
        records are past the newest."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        p = self.policy
        if anchor is not None and p.enabled and self.error is None \
                and anchor.seq - self.seq >= max(p.at_close, 1):
            self.seq, self.offset = anchor.seq, anchor.offset
            self._write(anchor, state, replies)

    def _write(self, anchor: Anchor, state: RunState, replies: ReplyOffsets) -> None:
        try:
            write(self.log, anchor, state, replies, self.policy.keep)
        except Exception as err:  # derived data: whatever fails here must not touch the run
            self.error = f"{type(err).__name__}: {err}"
