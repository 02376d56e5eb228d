"""The exec channel's wire format, host side: messages in, and the agent's replies as models.

A message is one JSON object on one line; when it carries bytes it announces them (`"blob": n`
in a request, `"blobs": [n, ...]` in a reply) and the raw bytes follow the line, so a 100 MiB
file costs no base64 and no JSON string. `Splitter` takes the stream in whatever pieces it comes
and hands back whole messages, in time linear in the bytes fed and in memory bounded by
`max_line` and `max_blob`: anything else is a `WireError`, which closes the channel.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_LINE = 1 << 20
"""Longest header line: the agent's headers are small; bulk bytes travel as blobs."""


class WireError(Exception):
    """The agent's stream broke the wire format (an overlong line, bad JSON, a blob too big)."""


@dataclass
class Message:
    """One header and the blobs that followed it."""

    header: dict[str, Any]
    blobs: list[bytes] = field(default_factory=list)


class Splitter:
    """Splits a byte stream into `Message`s (linear time, bounded memory).

    A header line is gathered in a small buffer (at most `max_line` bytes); a blob's pieces are
    kept as they came and joined once, so a 100 MiB blob costs one copy, not a growing buffer.
    """

    def __init__(self, *, max_line: int = MAX_LINE, max_blob: int) -> None:
        self.max_line, self.max_blob = max_line, max_blob
        self._line = bytearray()
        self._header: dict[str, Any] | None = None
        self._sizes: list[int] = []
        self._parts: list[bytes] = []
        self._have = self._need = 0

    def feed(self, data: bytes) -> list[Message]:
        """Every message that `data` completes, in order."""
        out, at = [], 0
        while at < len(data):
            if self._header is None:
                at = self._take_line(data, at)
                if self._header is None:
                    break
            else:
                take = min(self._need - self._have, len(data) - at)
                self._parts.append(data[at : at + take])  # the whole piece: no copy
                self._have += take
                at += take
            if self._header is not None and self._have == self._need:
                out.append(self._finish())
        return out

    def _take_line(self, data: bytes, at: int) -> int:
        """Gather header bytes from `data[at:]`; return where the line's end left off."""
        end = data.find(b"\n", at)
        piece = data[at:] if end < 0 else data[at:end]
        if len(self._line) + len(piece) > self.max_line:
            raise WireError(f"the agent sent more than {self.max_line} bytes without a newline")
        self._line += piece
        if end < 0:
            return len(data)
        line, self._line = bytes(self._line), bytearray()
        self._header, self._sizes = self._parse(line)
        self._need, self._have, self._parts = sum(self._sizes), 0, []
        return end + 1

    def _finish(self) -> Message:
        joined = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
        blobs, at = [], 0
        for size in self._sizes:
            blobs.append(joined[at : at + size])
            at += size
        msg = Message(self._header or {}, blobs)
        self._header, self._parts = None, []
        return msg

    def _parse(self, line: bytes) -> tuple[dict[str, Any], list[int]]:
        try:
            header = json.loads(line)
        except ValueError:
            raise WireError(f"the agent wrote a line that is not JSON: {line[:200]!r}") from None
        if not isinstance(header, dict):
            raise WireError(f"the agent wrote JSON that is not an object: {line[:200]!r}")
        sizes = header.pop("blobs", [])
        if not isinstance(sizes, list) or not all(type(n) is int and n >= 0 for n in sizes):
            raise WireError(f"the agent announced bad blob sizes: {line[:200]!r}")
        if sum(sizes) > self.max_blob:
            raise WireError(f"the agent announced {sum(sizes)} bytes (the limit is "
                            f"{self.max_blob})")
        return header, sizes


def request_line(rid: int, op: str, fields: dict[str, object], blob: bytes | None) -> bytes:
    """A request's header line (announcing `blob` when there is one)."""
    header: dict[str, object] = {"id": rid, "op": op, **fields}
    if blob is not None:
        header["blob"] = len(blob)
    return json.dumps(header).encode() + b"\n"


# ---- the agent's replies, validated -----------------------------------------------------------


class Reply(BaseModel):
    """A reply's header fields (the agent may add fields; an old host ignores them)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


M = TypeVar("M", bound=Reply)


class ExecReply(Reply):
    """What the agent says about one finished command (its output is the two blobs)."""

    rc: int
    timed_out: bool
    oom: bool
    """The command itself was OOM-killed."""
    oom_kills: int = Field(default=0, ge=0)
    """OOM kills of other processes (its children) while it ran."""
    truncated: bool
    dur: float
    start_error: str | None = None
    """Errno name when the command could not start."""


class ReadReply(Reply):
    too_big: int | None = None


class KillReply(Reply):
    killed: int = Field(ge=0)
    left: int = Field(default=0, ge=0)


def parse_reply(model: type[M], msg: Message, blobs: int) -> M:
    """`msg` as `model` with exactly `blobs` blobs, or `WireError`."""
    if len(msg.blobs) != blobs and not (blobs and "too_big" in msg.header):
        raise WireError(f"the agent's reply has {len(msg.blobs)} blobs, not {blobs}")
    try:
        return model.model_validate(msg.header)
    except ValidationError as err:
        raise WireError(f"the agent's reply is malformed: {err.errors()[0]['msg']} "
                        f"({str(msg.header)[:200]})") from None
