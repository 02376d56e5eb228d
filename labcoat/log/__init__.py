"""The experiment log: typed events, the one writer, verified reads, and the fold.

    from labcoat.log import Journal, load_state, read_log, LogReader, RunState, fold

`log.jsonl` is the only source of truth of a run: every step appends an event, and the run's
state is `fold(events)`. Snapshots of the fold (`<run_dir>/snapshots/`, `labcoat.log.snapshot`)
make resuming a long run cost its tail, not its length; they are derived data, checked against
the log before use. Depends only on `labcoat.experiment` (and the leaf utilities).
"""

from labcoat.log.events import SCHEMA_VERSION, Event, EventBase, parse_event
from labcoat.log.lines import TornTail
from labcoat.log.reader import (
    LOG_NAME,
    LogContents,
    LogReader,
    StateContents,
    load_state,
    log_path,
    read_events,
    read_log,
    read_state,
)
from labcoat.log.state import Grade, RunState, SubtaskState, fold, reduce
from labcoat.log.writer import LOCK_NAME, FileOps, Journal, SnapshotPolicy, emitter

__all__ = [
    "LOCK_NAME",
    "LOG_NAME",
    "SCHEMA_VERSION",
    "Event",
    "EventBase",
    "FileOps",
    "Grade",
    "Journal",
    "LogContents",
    "LogReader",
    "RunState",
    "SnapshotPolicy",
    "StateContents",
    "SubtaskState",
    "TornTail",
    "emitter",
    "fold",
    "load_state",
    "log_path",
    "parse_event",
    "read_events",
    "read_log",
    "read_state",
    "reduce",
]
