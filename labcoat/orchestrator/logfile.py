"""The log file's line format, its verification, and read-only access (no lock, no repair).

See `labcoat.orchestrator.journal` for the format and the writer. Everything here is also
importable from there.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from labcoat.errors import RunLogCorrupt, RunLogError, RunLogVersionError
from labcoat.orchestrator import events as ev
from labcoat.orchestrator.state import RunState, fold

LOG_NAME = "log.jsonl"

_SUM_KEY = b',"sum":"'
_SUFFIX_LEN = len(_SUM_KEY) + 64 + 2
_HEX = re.compile(rb"[0-9a-f]{64}")


def log_path(run_dir: Path | str) -> Path:
    """`<run_dir>/log.jsonl`; a path to the log file itself is accepted too."""
    path = Path(run_dir)
    return path if path.name == LOG_NAME or path.is_file() else path / LOG_NAME


def seal(body: bytes, prev_sum: str) -> tuple[bytes, str]:
    """The line for a compact JSON object `body` chained after `prev_sum`, and its sum."""
    digest = hashlib.sha256(prev_sum.encode() + body).hexdigest()
    return body[:-1] + _SUM_KEY + digest.encode() + b'"}\n', digest


# --- verification ----------------------------------------------------------------------------

class _BadLine(Exception):
    """A line that does not verify; the message says why."""


@dataclass(frozen=True)
class TornTail:
    """Bytes after the last good record that a crash mid-write left behind."""

    line: int
    """1-based number of the first bad line."""
    offset: int
    """Size of the file up to the last good record: where a repair truncates."""
    dropped_bytes: int
    reason: str


class Chain:
    """Verifies lines in order: newline, checksum chain, schema, seq."""

    def __init__(self, path: Path, *, validate: bool = True) -> None:
        self.path = path
        self.validate = validate
        """False for read-only access: a record the checksum vouches for is built without
        schema validation (it was validated when written); a writer always validates."""
        self.seq = 0
        self.sum = ""
        self.line = 0
        """Good lines so far; the line being checked is `line + 1`."""
        self.offset = 0

    def take(self, raw: bytes) -> ev.EventBase:
        """Verify the next line (`raw` with its newline) and advance past it."""
        body, digest = _split(raw)
        if hashlib.sha256(self.sum.encode() + body).hexdigest() != digest:
            raise _BadLine(self._mismatch(body))
        event = self._validate(body)
        if event.seq != self.seq:
            raise _BadLine(f"seq {event.seq} where {self.seq} was expected")
        self.seq, self.sum, self.offset = self.seq + 1, digest, self.offset + len(raw)
        self.line += 1
        return event

    def _validate(self, body: bytes) -> ev.EventBase:
        if not self.validate:
            record = self._newer_check(body)
            event = ev.construct_event(record)
            return event if event is not None else self._parse(record)
        try:
            return ev.event_adapter().validate_json(body)
        except ValidationError:
            pass  # not a current record: find out whether it is an older, newer or bad one
        return self._parse(self._newer_check(body))

    def _parse(self, record: dict[str, Any]) -> ev.EventBase:
        try:
            return ev.parse_event(record)
        except (ValidationError, ValueError) as err:
            raise _BadLine(f"not a valid record: {_first_error(err)}") from None

    def _newer_check(self, body: bytes) -> dict[str, Any]:
        """The record as a dict; raises RunLogVersionError for a newer schema."""
        try:
            record = json.loads(body)
        except ValueError as err:
            raise _BadLine(f"not JSON ({err})") from None
        if not isinstance(record, dict):
            raise _BadLine("not a JSON object")
        version = record.get("v")
        if isinstance(version, int) and version > ev.SCHEMA_VERSION:
            raise RunLogVersionError(
                f"{self.path} line {self.line + 1}: written with log schema v{version}; this "
                f"labcoat reads v0 to v{ev.SCHEMA_VERSION}. Upgrade labcoat "
                f"(pip install -U labcoat) to read or resume this run.")
        return record

    def _mismatch(self, body: bytes) -> str:
        record = self._newer_check(body)
        seq = record.get("seq")
        if seq != self.seq:
            return (f"seq {seq!r} where {self.seq} was expected "
                    "(a line is missing, duplicated or out of order)")
        return "checksum mismatch: the line was changed after it was written"


def _split(raw: bytes) -> tuple[bytes, str]:
    """(record bytes without `sum`, the sum) of a line; _BadLine when it is not a line."""
    if not raw.endswith(b"\n"):
        raise _BadLine("no newline at the end: the write was interrupted")
    if raw[:1] != b"{" and not raw.strip(b"\0 \t\r\n"):  # a record starts with "{"
        raise _BadLine("blank line")
    line = raw[:-1]
    cut = len(line) - _SUFFIX_LEN
    digest = line[cut + len(_SUM_KEY):-2]
    if cut < 1 or line[cut:cut + len(_SUM_KEY)] != _SUM_KEY or not line.endswith(b'"}') \
            or not _HEX.fullmatch(digest):
        raise _BadLine('no checksum: the line does not end with ,"sum":"<sha256>"}')
    return line[:cut] + b"}", digest.decode()


def _first_error(err: Exception) -> str:
    if isinstance(err, ValidationError):
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else first["msg"]
    return str(err)


def _blank(segment: bytes) -> bool:
    return not segment.strip(b"\0 \t\r")


def _torn(tail: bytes, chain: Chain) -> TornTail | None:
    """A TornTail when `tail` (from the first bad line on) is what a crash leaves."""
    segments = tail.split(b"\n")
    if not all(_blank(s) for s in segments[:-1]):
        return None  # a complete, non-blank bad line: damage, not a torn write
    if not tail.strip(b"\0"):
        reason = f"{len(tail)} NUL bytes at the end (blocks never written before a crash)"
    elif _blank(tail.replace(b"\n", b"")):
        reason = "blank lines at the end"
    else:
        reason = f"a partial last record ({len(tail)} bytes, no newline): the write was cut"
    return TornTail(chain.line + 1, chain.offset, len(tail), reason)


def _corrupt(chain: Chain, why: str) -> RunLogCorrupt:
    path, keep = shlex.quote(str(chain.path)), chain.line
    return RunLogCorrupt(
        f"{chain.path} line {keep + 1}: {why}. Nothing is skipped: the run cannot be read "
        f"past this line. To keep lines 1-{keep} and drop the rest (a copy stays in "
        f"{chain.path.name}.bak): cp {path} {path}.bak && head -n {keep} {path}.bak > {path}")


def scan(chain: Chain, tail: list[TornTail]) -> Iterator[ev.EventBase]:
    """Verified events of `chain.path`; a torn tail goes to `tail`, other damage raises."""
    with open(chain.path, "rb") as f:
        for raw in f:
            try:
                event = chain.take(raw)
            except _BadLine as bad:
                torn = _torn(raw + f.read(), chain)
                if torn is None:
                    raise _corrupt(chain, str(bad)) from None
                tail.append(torn)
                return
            yield event


# --- read-only access ------------------------------------------------------------------------

@dataclass(frozen=True)
class LogContents:
    path: Path
    events: list[ev.EventBase]
    torn: TornTail | None
    """A torn tail a writer would set aside (None when the file ends cleanly)."""


def read_log(run_dir: Path | str) -> LogContents:
    """Read and verify the log without locking or repairing it."""
    path = log_path(run_dir)
    if not path.exists():
        raise RunLogError(f"{path}: no such log; is {path.parent} a labcoat run directory?")
    chain, tail = Chain(path, validate=False), []
    events = list(scan(chain, tail))
    return LogContents(path, events, tail[0] if tail else None)


def read_events(run_dir: Path | str) -> list[ev.EventBase]:
    """The verified events of a run (a torn tail is left out, not repaired)."""
    return read_log(run_dir).events


def load_state(run_dir: Path | str) -> RunState:
    """Fold a run's log without keeping its events in memory."""
    path = log_path(run_dir)
    if not path.exists():
        raise RunLogError(f"{path}: no such log; is {path.parent} a labcoat run directory?")
    return fold(scan(Chain(path, validate=False), []))


class LogReader:
    """Incremental reader for `--follow`: each `poll()` returns the events added since.

    A partial last line waits for the next poll. A torn tail is left unread and reported
    in `torn` (a writer may repair it later); other damage raises `RunLogCorrupt`.
    """

    def __init__(self, run_dir: Path | str) -> None:
        self._chain = Chain(log_path(run_dir), validate=False)
        self.torn: TornTail | None = None

    @property
    def path(self) -> Path:
        return self._chain.path

    def poll(self) -> list[ev.EventBase]:
        with open(self._chain.path, "rb") as f:
            f.seek(self._chain.offset)
            data = f.read()
        out, pos, self.torn = [], 0, None
        while (end := data.find(b"\n", pos)) >= 0:
            try:
                out.append(self._chain.take(data[pos:end + 1]))
            except _BadLine as bad:
                self.torn = _torn(data[pos:], self._chain)
                if self.torn is None:
                    raise _corrupt(self._chain, str(bad)) from None
                break
            pos = end + 1
        return out
