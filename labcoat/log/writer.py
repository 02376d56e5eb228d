"""The experiment log file: `<run_dir>/log.jsonl`, append-only, checksummed, one writer.

Writing (the run loop)::

    with Journal.open(run_dir, run_id, create=True) as journal:   # or create=False to resume
        journal.state                    # RunState: fold of everything read + appended
        journal.count                    # records in the log
        journal.logged_replies()         # request hash -> logged model replies (read lazily)
        ev = journal.append("subtask_started", iteration=1, parent=plan.id,
                            subtask_id="it001-01", role="engineer", attempt=1, base_commit=sha)

`Journal.open` takes the run lock (`flock` on `<run_dir>/log.lock`; a second writer gets
`RunLocked` at once), starts from the newest valid snapshot of the fold (`labcoat.log.snapshot`;
none: from the start), reads and verifies the log after it, repairs a torn tail (below), and
folds the state. It never holds the events: a resumed run of a million records costs one
snapshot and the tail after it (`journal.events` reads them all back from the file, for tests
and tools). Snapshots are written as the log grows and at `close` (`SnapshotPolicy`); one that
does not match the log is recorded as `snapshot_ignored` (with the reason) and deleted.

`append(type_, /, *, iteration=None, parent=None, **fields)` fills the envelope (`v`, `seq`,
`id`, `run_id`, `ts`; `iteration` defaults to `state.iteration`), validates the fields with the
event model (pydantic models in field values are dumped; an unknown type or fields that do not
fit raise `BadEvent`, a ValueError that says which), writes the line with one `os.write` on an
`O_APPEND` descriptor and updates `state` with `reduce`. It is thread-safe. Host secrets (env
vars named like *_API_KEY, *TOKEN*, *SECRET*, *PASSWORD*), and any run of 12+ of their
characters in any case, are replaced by `[REDACTED]` before anything is written
(`labcoat.text.redact`, shared with the model layer).

Durability. Types in `events.COMMITTING` (everything that records work or a decision) are
fsynced before `append` returns. `sandbox_exec` (chatty) is fsynced by a timer within
`FLUSH_S` = 1 s, by the next committing record, by `flush()` or by `close()`. A failed or
short write or a failed fsync raises `RunLogWriteError`; the journal then refuses every
further append (a failed fsync is never retried: the page cache may already have dropped
the data). The record whose append raised may or may not be in the file.

Line format. A line is the record's compact JSON with a last key `sum`::

    {"v":1,"seq":7,"type":"graded",...,"sum":"<sha256 hex>"}

`sum` = sha256(previous line's sum + the line's bytes without `,"sum":"..."`), and "" for
the first line: the checksum covers the exact bytes written (its canonical form) and
chains every line to the one before. `seq` is 0-based and consecutive.

Reading. A torn tail (an unterminated last record, NUL bytes or blank lines at the end:
what a crash mid-write or a power loss leaves) is set aside by `Journal.open`: the file
is copied to `log.jsonl.broken-<UTC time>`, truncated after the last good record,
fsynced, and a `log_repaired` event is appended. Any other bad line (checksum mismatch,
seq gap, duplicate, reordering, a hand edit, a blank line in the middle) raises
`RunLogCorrupt: <path> line L: <why>` with the command that truncates there. Records of
an older schema are upgraded in memory; a newer one raises `RunLogVersionError`.

Read-only access (status, log, report) takes no lock and repairs nothing:
`read_log(run_dir) -> LogContents` (events + `torn`, the tail a writer would set aside),
`read_events(run_dir)`, `load_state(run_dir)` (streams: never holds all events), and
`LogReader` (incremental, for `labcoat log --follow`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from labcoat.durable import fsync_path
from labcoat.errors import (
    RunLocked,
    RunLogError,
    RunLogWriteError,
)
from labcoat.log import events as ev
from labcoat.log import replies as rp
from labcoat.log import snapshot as snap
from labcoat.log.lines import Chain, TornTail, scan, seal
from labcoat.log.reader import LOG_NAME, log_path
from labcoat.log.records import BadEvent, check_type, plain, validated
from labcoat.log.snapshot import SnapshotPolicy
from labcoat.log.state import RunState, fold, reduce
from labcoat.text import redact

__all__ = ["LOCK_NAME", "BadEvent", "FileOps", "Journal", "SnapshotPolicy", "emitter"]

LOCK_NAME = "log.lock"
FLUSH_S = 1.0
"""Longest time a batched (chatty) record stays un-fsynced."""

_ENVELOPE = frozenset({"v", "seq", "id", "run_id", "iteration", "ts", "parent", "type", "sum"})
_SECRET_NAME = re.compile(r"API_KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)


# --- writing ---------------------------------------------------------------------------------

class FileOps:
    """The two system calls appends go through. Tests subclass it to inject failures."""

    def write(self, fd: int, data: bytes) -> int:
        return os.write(fd, data)

    def fsync(self, fd: int) -> None:
        getattr(os, "fdatasync", os.fsync)(fd)


def _lock(run_dir: Path) -> int:
    """Hold `<run_dir>/log.lock` for this process (released when the fd closes or we die)."""
    fd = os.open(run_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise RunLocked(
            f"run locked by pid {pid}: another labcoat process is writing {run_dir}. Wait for "
            f"it to end, or stop it (kill {pid}) and run `labcoat resume {run_dir}`.") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _repair(path: Path, torn: TornTail) -> Path:
    """Copy the file aside, truncate it after the last good record, fsync both."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    broken, n = path.with_name(f"{path.name}.broken-{stamp}"), 1
    while broken.exists():
        n += 1
        broken = path.with_name(f"{path.name}.broken-{stamp}.{n}")
    shutil.copyfile(path, broken)
    fsync_path(broken)
    os.truncate(path, torn.offset)
    fsync_path(path)
    fsync_path(path.parent, directory=True)
    return broken


def _fold_tail(chain: Chain, tail: list[TornTail], state: RunState,
               replies: rp.ReplyOffsets) -> RunState:
    """Fold the records after the chain's position into `state`, indexing model replies."""

    def records() -> Iterator[ev.EventBase]:
        for event in scan(chain, tail):
            rp.note(replies, event, chain.start)
            yield event

    return fold(records(), state)


def _host_secrets() -> list[str]:
    """JSON-escaped values of secret-looking environment variables (what a log line holds)."""
    values = {v for k, v in os.environ.items() if _SECRET_NAME.search(k)}
    return sorted(json.dumps(v)[1:-1] for v in values)


class Journal:
    """The one writer of a run's log. Use `Journal.open(...)` as a context manager."""

    def __init__(self, path: Path, run_id: str, lock_fd: int, chain: Chain, state: RunState,
                 replies: rp.ReplyOffsets, snaps: snap.Snapshotter, ops: FileOps) -> None:
        self.path, self.run_id, self._lock_fd, self._chain = path, run_id, lock_fd, chain
        self._state, self._replies, self._snaps, self._ops = state, replies, snaps, ops
        self._fd: int | None = os.open(
            path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self._mu = threading.Lock()
        self._dirty = False
        self._timer: threading.Timer | None = None
        self._broken: str | None = None
        self._secrets = _host_secrets()
        self._state.run_id = self._state.run_id or run_id
        self.snapshot: str | None = None
        """The snapshot this journal started from (None: it replayed the whole log)."""

    @classmethod
    def open(cls, run_dir: Path | str, run_id: str | None = None, *, create: bool = False,
             ops: FileOps | None = None, snapshots: SnapshotPolicy | None = None) -> Journal:
        """Lock, load, verify and repair the log of `run_dir`; see the module docstring.

        `create=True` starts a new log (refused when one with records exists);
        `create=False` resumes one (refused when there is none). `run_id` may be left out
        when resuming; when given it must match the log's. `snapshots`: when to snapshot the
        fold (default `SnapshotPolicy()`).
        """
        run_dir = Path(run_dir)
        if create:
            run_dir.mkdir(parents=True, exist_ok=True)
        elif not log_path(run_dir).exists():
            raise RunLogError(f"{run_dir}: no {LOG_NAME}; is it a labcoat run directory?")
        lock_fd = _lock(run_dir)
        try:
            return cls._load(run_dir / LOG_NAME, run_id, lock_fd, create, ops or FileOps(),
                             snapshots or SnapshotPolicy())
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def _load(cls, path: Path, run_id: str | None, lock_fd: int, create: bool,
              ops: FileOps, policy: SnapshotPolicy) -> Journal:
        chain, tail, replies = Chain(path), list[TornTail](), rp.ReplyOffsets()
        snap.remove(path, [])  # temporary files of a writer killed while it wrote a snapshot
        restored, ignored = (None, []) if create else snap.restore(path)
        if restored is not None:
            chain.resume(restored.anchor)
            replies = dict(restored.replies)
        state = restored.state if restored is not None else RunState()
        state = _fold_tail(chain, tail, state, replies) if path.exists() else state
        if create and chain.seq:
            raise RunLogError(f"{path} already holds a run; use `labcoat resume {path.parent}`")
        logged = state.run_id or None
        if run_id and logged and run_id != logged:
            raise RunLogError(f"{path} belongs to run {logged}, not {run_id}")
        if not (run_id or logged):
            raise RunLogError(f"{path} has no records yet: pass the run id to Journal.open")
        if create:
            snap.remove(path)  # left by an earlier log here: they can match nothing new
        broken = _repair(path, tail[0]) if tail else None
        snaps = snap.Snapshotter(path, policy, restored.anchor if restored else None)
        journal = cls(path, run_id or logged or "", lock_fd, chain, state, replies, snaps, ops)
        journal.snapshot = restored.name if restored is not None else None
        if create:
            fsync_path(path.parent, directory=True)
        if broken is not None:
            journal.append("log_repaired", broken_copy=broken.name,
                           dropped_bytes=tail[0].dropped_bytes, reason=tail[0].reason)
        journal._report_ignored(ignored)
        return journal

    def _report_ignored(self, ignored: list[snap.Ignored]) -> None:
        """Say in the log which snapshots did not match it, and why; then delete them (kept,
        each resume would say it again). A first resume of a long log snapshots at once."""
        for bad in ignored:
            self.append("snapshot_ignored", snapshot=bad.name, snapshot_seq=bad.seq,
                        reason=bad.reason)
        if ignored:
            self.flush()
            snap.remove(self.path, [bad.name for bad in ignored])
        with self._mu:
            self._maybe_snapshot()

    @property
    def state(self) -> RunState:
        """The fold of every record so far (a new object after each append)."""
        return self._state

    @property
    def events(self) -> list[ev.EventBase]:
        """Every record, read back from the file: O(records), for tests and tools (the run
        reads `state`; replays use `logged_replies`)."""
        return list(scan(Chain(self.path), []))

    @property
    def count(self) -> int:
        """Records in the log."""
        return self._chain.seq

    @property
    def snapshot_error(self) -> str | None:
        """Why snapshots stopped being written this session (None: they did not)."""
        return self._snaps.error

    def logged_replies(self) -> rp.LoggedReplies:
        """Request hash -> the model replies logged for it (calls really made), as of now, each
        read from the log when first looked at: what `ManagedModel(replay=...)` takes."""
        with self._mu:
            return rp.LoggedReplies(self.path, dict(self._replies))

    @property
    def run_dir(self) -> Path:
        return self.path.parent

    def append(self, type_: str, /, *, iteration: int | None = None, parent: str | None = None,
               **fields: Any) -> ev.EventBase:
        """Validate, write and (for committing types) fsync one event; return it."""
        with self._mu:
            self._check_usable()
            event, line, digest = self._encode(type_, iteration, parent, fields)
            start = self._chain.offset
            self._write(line)
            if type_ in ev.COMMITTING:
                self._sync()
            else:
                self._dirty = True
                self._schedule_flush()
            self._chain.advance(len(line), digest)
            rp.note(self._replies, event, start)
            self._state = reduce(self._state, event)
            self._maybe_snapshot()
            return event

    def _maybe_snapshot(self) -> None:
        """Start a periodic snapshot when one is due (with `_mu` held)."""
        if self._snaps.due(self._chain):
            if self._dirty:
                self._sync()  # a snapshot never names lines a crash could take back
            self._snaps.start(self._chain.anchor(), self._state, dict(self._replies))

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise RunLogWriteError(
                f"{self.path}: appends stopped after a failed write ({self._broken}). The log "
                f"up to there is intact: fix the cause and run `labcoat resume {self.run_dir}`.")
        if self._fd is None:
            raise RunLogWriteError(f"{self.path}: the journal is closed")

    def _encode(self, type_: str, iteration: int | None, parent: str | None,
                fields: dict[str, Any]) -> tuple[ev.EventBase, bytes, str]:
        clash = _ENVELOPE & fields.keys()
        if clash:
            raise TypeError(f"append() sets {sorted(clash)} itself; do not pass them")
        check_type(type_)
        record = {
            "v": ev.SCHEMA_VERSION, "seq": self._chain.seq, "type": type_,
            "id": uuid.uuid4().hex, "run_id": self.run_id,
            "iteration": self._state.iteration if iteration is None else iteration,
            "ts": time.time(), "parent": parent,
            **{k: plain(v) for k, v in fields.items()},
        }
        event, body = validated(type_, record)
        redacted = self._redact(body)
        if redacted != body:
            body, event = redacted, ev.event_adapter().validate_json(redacted)
        line, digest = seal(body.encode(), self._chain.sum)
        return event, line, digest

    def _redact(self, body: str) -> str:
        return redact(body, self._secrets)

    def _write(self, line: bytes) -> None:
        assert self._fd is not None
        try:
            written = self._ops.write(self._fd, line)
        except OSError as err:
            raise self._fail(f"write: {err.strerror or err}") from err
        if written != len(line):
            raise self._fail(f"short write: {written} of {len(line)} bytes (disk full?)")

    def _sync(self) -> None:
        assert self._fd is not None
        try:
            self._ops.fsync(self._fd)
        except OSError as err:
            raise self._fail(f"fsync: {err.strerror or err}") from err
        self._dirty = False

    def _fail(self, what: str) -> RunLogWriteError:
        """Stop taking records; the error to raise."""
        self._broken = what
        return RunLogWriteError(
            f"{self.path}: {what}. The run stops here and this log takes no more records "
            f"(never retried). Free disk space or fix the device (df -h {self.run_dir}), "
            f"then run `labcoat resume {self.run_dir}`.")

    def _schedule_flush(self) -> None:
        if self._timer is None:
            self._timer = threading.Timer(FLUSH_S, self._flush_later)
            self._timer.daemon = True
            self._timer.start()

    def _flush_later(self) -> None:
        with self._mu:
            self._timer = None
            if self._dirty and self._fd is not None and self._broken is None:
                # A failure is recorded in self._broken: the next append raises it.
                with contextlib.suppress(RunLogWriteError):
                    self._sync()

    def flush(self) -> None:
        """fsync batched records now."""
        with self._mu:
            self._check_usable()
            if self._dirty:
                self._sync()

    def close(self) -> None:
        """Flush batched records, snapshot the fold when due, close the file, release the run
        lock. Idempotent."""
        with self._mu:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            try:
                usable = self._fd is not None and self._broken is None
                if usable and self._dirty:
                    self._sync()
                anchor = self._chain.anchor() if usable and self._chain.seq else None
                self._snaps.finish(anchor, self._state, self._replies)
            finally:
                self._release()

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def emitter(journal: Journal, *, iteration: int | None = None,
            parent: str | None = None) -> Callable[[str, Mapping[str, Any]], None]:
    """A `RoleContext.emit`-shaped callable: `emit(type_, fields)` appends to `journal`."""

    def emit(type_: str, fields: Mapping[str, Any]) -> None:
        journal.append(type_, iteration=iteration, parent=parent, **dict(fields))

    return emit
