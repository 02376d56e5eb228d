"""The logged model replies a resumed run replays, found by request hash, never all held.

    index: ReplyOffsets = {}                     request hash -> where its llm_call lines start
    note(index, event, start)                    called for every record read or appended
    replies = LoggedReplies(log_path, index)     Mapping[hash, Sequence[reply]]: what
                                                 `ManagedModel(replay=...)` takes

A run of days holds hundreds of thousands of model calls; their replies stay in the log. The
index keeps only byte offsets (it also travels in the snapshots, see `labcoat.log.snapshot`), and
each reply is read from its line when it is first looked at: a resumed run reads back only the
replies it replays.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from labcoat.errors import RunLogCorrupt
from labcoat.log import events as ev
from labcoat.log.lines import BadLine, record_bytes

ReplyOffsets = dict[str, tuple[int, ...]]
"""Request hash -> start offsets of the `llm_call` lines that logged a reply for it, in log order.
Tuples, so that a shallow copy of the dict is a consistent copy (appends replace them)."""


def note(index: ReplyOffsets, event: ev.EventBase, start: int) -> None:
    """Index `event` (whose line starts at byte `start`) when it is a call really made: replayed
    calls are not replies to replay again."""
    if isinstance(event, ev.LlmCall) and not event.replayed:
        index[event.request_hash] = (*index.get(event.request_hash, ()), start)


class LoggedReply(Mapping[str, Any]):
    """One logged reply (the `response` of an `llm_call`), read from its line on first use."""

    __slots__ = ("_data", "_path", "_request_hash", "_start")

    def __init__(self, path: Path, start: int, request_hash: str) -> None:
        self._path, self._start, self._request_hash = path, start, request_hash
        self._data: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._data is None:
            self._data = read_reply(self._path, self._start, self._request_hash)
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


def read_reply(path: Path, start: int, request_hash: str) -> dict[str, Any]:
    """The `response` of the `llm_call` line at byte `start` of `path`."""
    with open(path, "rb") as f:
        f.seek(start)
        raw = f.readline()
    try:
        record = json.loads(record_bytes(raw))
    except (BadLine, ValueError) as err:
        record = {"error": str(err)}
    if record.get("type") != "llm_call" or record.get("request_hash") != request_hash \
            or not isinstance(record.get("response"), dict):
        raise RunLogCorrupt(
            f"{path}: byte {start} no longer holds the model call it held when the run was "
            f"opened (request {request_hash}): the log was changed under a running labcoat. "
            f"Stop the run and resume it (`labcoat resume {path.parent}`).")
    return dict(record["response"])


class LoggedReplies(Mapping[str, Sequence[Mapping[str, Any]]]):
    """Request hash -> its logged replies in log order, each read when first looked at."""

    def __init__(self, path: Path, index: ReplyOffsets) -> None:
        self._path, self._index = path, index

    def __getitem__(self, request_hash: str) -> list[LoggedReply]:
        return [LoggedReply(self._path, start, request_hash)
                for start in self._index[request_hash]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


__all__ = ["LoggedReplies", "LoggedReply", "ReplyOffsets", "note", "read_reply"]
