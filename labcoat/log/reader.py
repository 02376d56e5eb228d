"""Read-only access to a run's log: no lock, no repair (status, log, report, the viewer).

    read_log(run_dir) -> LogContents      the verified events and the torn tail, if any
    read_events(run_dir)                  the verified events
    load_state(run_dir)                   the fold: the newest valid snapshot plus the tail
    read_state(run_dir) -> StateContents  the same, with the record count and the torn tail
    LogReader(run_dir).poll()             the events added since the last poll (--follow)

`load_state` and `read_state` start from a snapshot exactly as a resume does
(`labcoat.log.snapshot`: every check, then only the lines after it), so `labcoat status` and
`labcoat report` on a run of a million records read one snapshot and a short tail. A snapshot
that fails a check is passed over silently here (a reader writes nothing; the next writer
records it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from labcoat.errors import RunLogError
from labcoat.log import events as ev
from labcoat.log import snapshot
from labcoat.log.lines import BadLine, Chain, TornTail, corrupt, scan, torn_tail
from labcoat.log.state import RunState, fold

LOG_NAME = "log.jsonl"


def log_path(run_dir: Path | str) -> Path:
    """`<run_dir>/log.jsonl`; a path to the log file itself is accepted too."""
    path = Path(run_dir)
    return path if path.name == LOG_NAME or path.is_file() else path / LOG_NAME



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
    chain, tail = Chain(path, validate=False), list[TornTail]()
    events = list(scan(chain, tail))
    return LogContents(path, events, tail[0] if tail else None)


def read_events(run_dir: Path | str) -> list[ev.EventBase]:
    """The verified events of a run (a torn tail is left out, not repaired)."""
    return read_log(run_dir).events


def load_state(run_dir: Path | str) -> RunState:
    """Fold a run's log without keeping its events in memory (from a snapshot when one is
    valid)."""
    return read_state(run_dir).state


@dataclass(frozen=True)
class StateContents:
    path: Path
    state: RunState
    count: int
    """Records in the log (the torn tail not counted)."""
    torn: TornTail | None
    """A torn tail a writer would set aside (None when the file ends cleanly)."""
    snapshot: str | None = None
    """The snapshot the fold started from (None: the whole log was read)."""


def read_state(run_dir: Path | str) -> StateContents:
    """The fold of a run's log, the number of its records and its torn tail, if any."""
    path = log_path(run_dir)
    if not path.exists():
        raise RunLogError(f"{path}: no such log; is {path.parent} a labcoat run directory?")
    chain, tail = Chain(path, validate=False), list[TornTail]()
    restored, _ = snapshot.restore(path)
    if restored is not None:
        chain.resume(restored.anchor)
    state = fold(scan(chain, tail), restored.state if restored is not None else None)
    return StateContents(path, state, chain.seq, tail[0] if tail else None,
                         restored.name if restored is not None else None)


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
            except BadLine as bad:
                self.torn = torn_tail(data[pos:], self._chain)
                if self.torn is None:
                    raise corrupt(self._chain, str(bad)) from None
                break
            pos = end + 1
        return out
