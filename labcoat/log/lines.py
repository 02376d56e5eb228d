"""The log's line format and its verification: one JSON record per line, chained checksums.

    {"v":1,"seq":7,"type":"graded",...,"sum":"<sha256 hex>"}

`sum` = sha256(previous line's sum + the line's bytes without `,"sum":"..."`), and "" for the
first line. `Chain` verifies lines in order; `scan` yields verified events and sets a torn tail
(what a crash mid-write leaves) aside; any other bad line is `RunLogCorrupt` naming the line.
See `labcoat.log.writer` for durability and repair.
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

from labcoat.errors import RunLogCorrupt, RunLogVersionError
from labcoat.log import events as ev

_SUM_KEY = b',"sum":"'
_SUFFIX_LEN = len(_SUM_KEY) + 64 + 2
_HEX = re.compile(rb"[0-9a-f]{64}")


def seal(body: bytes, prev_sum: str) -> tuple[bytes, str]:
    """The line for a compact JSON object `body` chained after `prev_sum`, and its sum."""
    digest = hashlib.sha256(prev_sum.encode() + body).hexdigest()
    return body[:-1] + _SUM_KEY + digest.encode() + b'"}\n', digest


# --- verification ----------------------------------------------------------------------------

class BadLine(Exception):
    """A line that does not verify; the message says why."""


@dataclass(frozen=True)
class Anchor:
    """One line of the log, named so that a snapshot can be tied to the prefix ending there."""

    seq: int
    offset: int
    """Size of the prefix: where the line ends (after its newline)."""
    length: int
    """The line's size in bytes, newline included."""
    sum: str
    """The line's checksum (which chains every line before it)."""
    prev: str
    """The previous line's sum ("" for the first line): the line can be verified on its own."""


def record_bytes(raw: bytes) -> bytes:
    """The record (compact JSON without `sum`) of one line; BadLine when it is not a line."""
    return _split(raw)[0]


def mismatch(raw: bytes, anchor: Anchor) -> str | None:
    """Why the line `raw` is not `anchor`'s line, or None when it is: intact, with the same sum
    (so the same bytes and the same prefix before it: the sums chain) and the same seq."""
    try:
        body, digest = _split(raw)
    except BadLine as bad:
        return str(bad)
    if digest != anchor.sum:
        return "another line is there (its checksum differs)"
    if hashlib.sha256(anchor.prev.encode() + body).hexdigest() != digest:
        return "the line was changed after it was written"
    seq = json.loads(body).get("seq")
    return None if seq == anchor.seq else f"the line is seq {seq!r}, not {anchor.seq}"


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
        self.start = 0
        """Where the last good line starts (a snapshot names that line: `anchor()`)."""
        self.prev = ""
        """The sum of the line before the last good one (what the last line's sum chains to)."""

    def take(self, raw: bytes) -> ev.EventBase:
        """Verify the next line (`raw` with its newline) and advance past it."""
        body, digest = _split(raw)
        if hashlib.sha256(self.sum.encode() + body).hexdigest() != digest:
            raise BadLine(self._mismatch(body))
        event = self._validate(body)
        if event.seq != self.seq:
            raise BadLine(f"seq {event.seq} where {self.seq} was expected")
        self.advance(len(raw), digest)
        return event

    def advance(self, size: int, digest: str) -> None:
        """Move past one more line of `size` bytes whose sum is `digest`."""
        self.prev, self.sum, self.start = self.sum, digest, self.offset
        self.seq, self.offset, self.line = self.seq + 1, self.offset + size, self.line + 1

    def anchor(self) -> Anchor:
        """The last good line, as a snapshot of the prefix up to it names it."""
        return Anchor(seq=self.seq - 1, offset=self.offset, length=self.offset - self.start,
                      sum=self.sum, prev=self.prev)

    def resume(self, anchor: Anchor) -> None:
        """Continue after `anchor`'s line without reading the lines up to it (verified by
        `labcoat.log.snapshot` against the file)."""
        self.seq = self.line = anchor.seq + 1
        self.sum, self.prev, self.offset = anchor.sum, anchor.prev, anchor.offset
        self.start = anchor.offset - anchor.length

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
            raise BadLine(f"not a valid record: {_first_error(err)}") from None

    def _newer_check(self, body: bytes) -> dict[str, Any]:
        """The record as a dict; raises RunLogVersionError for a newer schema."""
        try:
            record = json.loads(body)
        except ValueError as err:
            raise BadLine(f"not JSON ({err})") from None
        if not isinstance(record, dict):
            raise BadLine("not a JSON object")
        version = record.get("v")
        if isinstance(version, int) and version > ev.SCHEMA_VERSION:
            raise RunLogVersionError(
                f"{self.path} line {self.line + 1}: written with log schema v{version}; this "
                f"labcoat reads v0 to v{ev.SCHEMA_VERSION}. Upgrade labcoat "
                f"(pip install -U labcoat) to read or resume this run.")
        return record

    def _mismatch(self, body: bytes) -> str:
        # No version check here: a line that fails its checksum is damaged, whatever its "v"
        # now says (one flipped byte turns "v":1 into "v":7; it is not a newer labcoat's line).
        try:
            record = json.loads(body)
        except ValueError:
            record = None
        seq = record.get("seq") if isinstance(record, dict) else self.seq
        if seq != self.seq:
            return (f"seq {seq!r} where {self.seq} was expected "
                    "(a line is missing, duplicated or out of order)")
        return "checksum mismatch: the line was changed after it was written"


def _split(raw: bytes) -> tuple[bytes, str]:
    """(record bytes without `sum`, the sum) of a line; BadLine when it is not a line."""
    if not raw.endswith(b"\n"):
        raise BadLine("no newline at the end: the write was interrupted")
    if raw[:1] != b"{" and not raw.strip(b"\0 \t\r\n"):  # a record starts with "{"
        raise BadLine("blank line")
    line = raw[:-1]
    cut = len(line) - _SUFFIX_LEN
    digest = line[cut + len(_SUM_KEY):-2]
    if cut < 1 or line[cut:cut + len(_SUM_KEY)] != _SUM_KEY or not line.endswith(b'"}') \
            or not _HEX.fullmatch(digest):
        raise BadLine('no checksum: the line does not end with ,"sum":"<sha256>"}')
    return line[:cut] + b"}", digest.decode()


def _first_error(err: Exception) -> str:
    if isinstance(err, ValidationError):
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else first["msg"]
    return str(err)


def _blank(segment: bytes) -> bool:
    return not segment.strip(b"\0 \t\r")


def torn_tail(tail: bytes, chain: Chain) -> TornTail | None:
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


def corrupt(chain: Chain, why: str) -> RunLogCorrupt:
    path, keep = shlex.quote(str(chain.path)), chain.line
    return RunLogCorrupt(
        f"{chain.path} line {keep + 1}: {why}. Nothing is skipped: the run cannot be read "
        f"past this line. To keep lines 1-{keep} and drop the rest (a copy stays in "
        f"{chain.path.name}.bak): cp {path} {path}.bak && head -n {keep} {path}.bak > {path}")


def scan(chain: Chain, tail: list[TornTail]) -> Iterator[ev.EventBase]:
    """Verified events of `chain.path` from `chain.offset` on (the start, unless the chain
    resumes after a snapshot); a torn tail goes to `tail`, other damage raises."""
    with open(chain.path, "rb") as f:
        f.seek(chain.offset)
        for raw in f:
            try:
                event = chain.take(raw)
            except BadLine as bad:
                torn = torn_tail(raw + f.read(), chain)
                if torn is None:
                    raise corrupt(chain, str(bad)) from None
                tail.append(torn)
                return
            yield event
