"""Events of the experiment log: frozen pydantic models, one per line of `log.jsonl`.

Every event shares the envelope fields of `EventBase` (`v`, `seq`, `id`, `run_id`,
`iteration`, `ts`, `parent`) and a `type` discriminator; `Event` is the union of them all
and `parse_event` / `EVENT_ADAPTER` turn a record into the right class. The checksum
(`sum`) is not a model field: it belongs to the line, see `labcoat.log.writer`.

Schema versions (`v`). Add optional fields freely within a version; removing or renaming
a field, or changing its meaning, needs a new version and an `upgrade` step below.

    v0  development logs before labcoat 0.1: no `parent` field; `sandbox_exec` named
        `returncode` as `exit_code`.
    v1  labcoat 0.1 (current): `parent` on every event; `returncode`.
        Optional v1 additions (a reader that predates them refuses nothing it wrote):
        `tool_call` (one tool call of an LLM role's loop) and `llm_error` (a model call that
        failed with a labcoat error); the fold ignores both. `tool_call.result`: what the
        model was shown for the call (its end, capped at TAIL_CAP; None in older logs, which
        kept only the arguments, and for `submit`, which ends the loop).
        `sandbox_exec.oom_kills`: processes the OOM killer took while the command ran, the
        command itself not counted (`oom_killed` says that one); written only when non-zero,
        so 0 in older logs. `capacity` (what the scheduler may use and how many sandboxes
        fit, once per session) and `sandbox_leased` (each sandbox's slot and GPU device ids);
        the fold ignores both.
        A person in the loop: `note_added`, `approval_decided`, `stop_requested` (each with
        the `request` id that carried it, taken in once) and `subtask_cancelled` (`stop
        --now`); `plan_proposed.awaiting` / `gate` / `worst_usd` (subtasks that wait for a
        person's approval, and why) and `plan_proposed.notes` (how the plan took each note
        into account); `run_paused.waiting_for_person` (an approval timeout, exit code 4).
        Older logs have none of them: no notes, no approvals, nothing waits.
        `claim_checked`: the reproducer's verdict on one of experiment.yaml's `claims`
        (folded into `RunState.claims`); older logs have no claims.
        `node_lost`: a cluster node that stopped answering while a sandbox of the run was on
        it (`labcoat run --cluster`), once per node; the fold ignores it.
        `subtask_finished.candidate`: False for a measurement (never the best, never
        critiqued); absent from older logs, which read as candidates only.
        `snapshot_ignored`: a snapshot of the fold (`labcoat.log.snapshot`) that did not match
        the log or this labcoat, replayed instead of trusted (its file, seq and why); the fold
        ignores it.

Older records are upgraded in memory by `upgrade` (the file is never rewritten); a record
newer than `SCHEMA_VERSION` is refused with `RunLogVersionError`.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from labcoat.log.event_base import CMD_CAP, COMMITTING, SCHEMA_VERSION, TAIL_CAP, EventBase
from labcoat.log.model_events import LlmCall, LlmError, ToolCallEvent
from labcoat.log.run_events import (
    ApprovalDecided,
    BudgetExhaustedEvent,
    IterationClosed,
    LogRepaired,
    NoteAdded,
    PlanProposed,
    RunFailed,
    RunFinished,
    RunPaused,
    RunResumed,
    RunStarted,
    SnapshotIgnored,
    StopRequested,
    SubtaskCancelled,
)
from labcoat.log.work_events import (
    CapacityNoted,
    ClaimChecked,
    CritiqueEvent,
    Graded,
    NodeLost,
    SandboxExec,
    SandboxLeased,
    SubtaskFailed,
    SubtaskFinished,
    SubtaskStarted,
)

__all__ = [
    "CMD_CAP",
    "COMMITTING",
    "EVENT_CLASSES",
    "EVENT_TYPES",
    "SCHEMA_VERSION",
    "TAIL_CAP",
    "ApprovalDecided",
    "BudgetExhaustedEvent",
    "CapacityNoted",
    "ClaimChecked",
    "CritiqueEvent",
    "Event",
    "EventBase",
    "Graded",
    "IterationClosed",
    "LlmCall",
    "LlmError",
    "LogRepaired",
    "NodeLost",
    "NoteAdded",
    "PlanProposed",
    "RunFailed",
    "RunFinished",
    "RunPaused",
    "RunResumed",
    "RunStarted",
    "SandboxExec",
    "SandboxLeased",
    "SnapshotIgnored",
    "StopRequested",
    "SubtaskCancelled",
    "SubtaskFailed",
    "SubtaskFinished",
    "SubtaskStarted",
    "ToolCallEvent",
    "construct_event",
    "event_adapter",
    "parse_event",
    "upgrade",
]


EVENT_CLASSES: tuple[type[EventBase], ...] = (
    RunStarted, RunResumed, PlanProposed, SubtaskStarted, SandboxExec, LlmCall, NodeLost,
    SubtaskFinished, SubtaskFailed, Graded, CritiqueEvent, IterationClosed,
    BudgetExhaustedEvent, RunPaused, RunFinished, RunFailed, LogRepaired, ToolCallEvent,
    LlmError, CapacityNoted, SandboxLeased, NoteAdded, ApprovalDecided, StopRequested,
    SubtaskCancelled, ClaimChecked, SnapshotIgnored,
)

Event = Annotated[
    RunStarted | RunResumed | PlanProposed | SubtaskStarted | SandboxExec | LlmCall
    | SubtaskFinished | SubtaskFailed | Graded | CritiqueEvent | IterationClosed
    | BudgetExhaustedEvent | RunPaused | RunFinished | RunFailed | LogRepaired | NodeLost
    | ToolCallEvent | LlmError | CapacityNoted | SandboxLeased | NoteAdded | ApprovalDecided
    | StopRequested | SubtaskCancelled | ClaimChecked | SnapshotIgnored,
    Field(discriminator="type"),
]
"""Any event; validate with `EVENT_ADAPTER` or `parse_event`."""

EVENT_BY_TYPE: dict[str, type[EventBase]] = {
    c.model_fields["type"].default: c for c in EVENT_CLASSES}
EVENT_TYPES: frozenset[str] = frozenset(EVENT_BY_TYPE)


@functools.cache
def event_adapter() -> TypeAdapter[Event]:
    """The validator for any event, built on first use: building every event's schema costs
    ~150 ms, which read-only commands (`labcoat status`, `labcoat log`) never pay."""
    return TypeAdapter(Event)


def __getattr__(name: str) -> Any:
    if name == "EVENT_ADAPTER":
        return event_adapter()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def construct_event(record: dict[str, Any]) -> EventBase | None:
    """An event from a record whose bytes a checksum has already vouched for, without
    re-validating it (the writer validated it before writing). None when the record does not
    have the shape of a current event, so that the caller validates it and reports why."""
    cls = EVENT_BY_TYPE.get(record.get("type"))  # type: ignore[arg-type]
    if cls is None or record.get("v") != SCHEMA_VERSION:
        return None
    required = _required_fields(cls)
    if not required <= record.keys() or not record.keys() <= cls.model_fields.keys():
        return None
    return cls.model_construct(**record)


@functools.cache
def _required_fields(cls: type[EventBase]) -> frozenset[str]:
    return frozenset(n for n, f in cls.model_fields.items() if f.is_required())


def _v0_to_v1(record: dict[str, Any]) -> dict[str, Any]:
    record.setdefault("parent", None)
    if record.get("type") == "sandbox_exec" and "exit_code" in record:
        record["returncode"] = record.pop("exit_code")
    record["v"] = 1
    return record


_UPGRADES = {0: _v0_to_v1}
"""`_UPGRADES[n]` turns a version-n record into version n+1."""


def upgrade(record: dict[str, Any]) -> dict[str, Any]:
    """Bring an older record to `SCHEMA_VERSION` in memory. Raises ValueError on a newer one."""
    version = record.get("v")
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ValueError(f"`v` is {version!r}, not a schema version")
    if version > SCHEMA_VERSION:
        raise ValueError(f"schema v{version} is newer than this labcoat's v{SCHEMA_VERSION}")
    while record["v"] < SCHEMA_VERSION:
        record = _UPGRADES[record["v"]](dict(record))
    return record


def parse_event(record: dict[str, Any]) -> Event:
    """Validate a record of any supported version (upgrading it) into its event class."""
    return event_adapter().validate_python(upgrade(dict(record)))
