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
        so 0 in older logs.

Older records are upgraded in memory by `upgrade` (the file is never rewritten); a record
newer than `SCHEMA_VERSION` is refused with `RunLogVersionError`.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from labcoat import text

SCHEMA_VERSION = 1
"""The version this labcoat writes. It reads every version from 0 up to this one."""

TAIL_CAP = 4096
"""Characters kept from the end of stdout/stderr in `sandbox_exec`."""
CMD_CAP = 2048
"""Characters kept from the start of a command in `sandbox_exec`."""

COMMITTING = frozenset({
    "run_started", "run_resumed", "plan_proposed", "subtask_started", "llm_call",
    "subtask_finished", "subtask_failed", "graded", "critique", "iteration_closed",
    "budget_exhausted", "run_paused", "run_finished", "run_failed", "log_repaired",
})
"""Types fsynced before `Journal.append` returns: the run acts on them. Others are batched."""


class EventBase(BaseModel):
    """Fields every record carries. `seq` is 0-based and consecutive in the file."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants",
                              defer_build=True)

    v: Literal[1] = 1
    """Schema version of the record (after an in-memory upgrade: always the current one)."""
    seq: int = Field(ge=0)
    """Position in the log, 0-based, no gaps."""
    type: str
    id: str
    """uuid4 hex, unique per event."""
    run_id: str
    iteration: int = Field(ge=0)
    """0 before the first plan; the plan's iteration afterwards."""
    ts: float
    """Unix time of the append."""
    parent: str | None = None
    """Id of the event this one follows from (e.g. the subtask_started of a sandbox_exec)."""


class RunStarted(EventBase):
    type: Literal["run_started"] = "run_started"
    config: dict[str, Any]
    """Resolved run options (budgets, parallel, patience, ...)."""
    experiment: dict[str, Any]
    """The validated experiment spec, dumped."""
    experiment_dir: str
    experiment_hash: str
    grader_hash: str
    labcoat_version: str
    seed: int
    brain: str
    """"search" or a model spec such as "anthropic:MODEL"."""
    base_commit: str
    """The workspace's initial commit."""


class RunResumed(EventBase):
    type: Literal["run_resumed"] = "run_resumed"
    overrides: dict[str, Any] = Field(default_factory=dict)
    """Config keys raised on resume; the fold merges them into `RunState.config`."""
    pid: int


class PlanProposed(EventBase):
    type: Literal["plan_proposed"] = "plan_proposed"
    subtasks: list[dict[str, Any]]
    """`Subtask` dumps in plan order."""
    rationale: str = ""


class SubtaskStarted(EventBase):
    type: Literal["subtask_started"] = "subtask_started"
    subtask_id: str
    role: str
    attempt: int = Field(ge=1)
    """1 on the first try, +1 on each re-run after an interruption."""
    base_commit: str


class SandboxExec(EventBase):
    type: Literal["sandbox_exec"] = "sandbox_exec"
    subtask_id: str | None = None
    cmd: str
    returncode: int
    duration_s: float
    timed_out: bool = False
    oom_killed: bool = False
    """The command itself died of it."""
    oom_kills: int = Field(default=0, ge=0)
    """Other processes (its children) OOM-killed while it ran (optional v1 field)."""
    stdout_tail: str = ""
    stderr_tail: str = ""

    @field_validator("cmd")
    @classmethod
    def _cap_cmd(cls, value: str) -> str:
        return text.head(value, CMD_CAP)

    @field_validator("stdout_tail", "stderr_tail")
    @classmethod
    def _cap_tail(cls, value: str) -> str:
        return text.tail(value, TAIL_CAP)


class LlmCall(EventBase):
    type: Literal["llm_call"] = "llm_call"
    role: str
    subtask_id: str | None = None
    model: str
    request_hash: str
    """Key for replay on resume."""
    response: dict[str, Any]
    usage: dict[str, int] = Field(default_factory=dict)
    """input_tokens, output_tokens, cache_read_tokens, cache_write_tokens."""
    cost_usd: float | None = None
    """None when the price is unknown: never a silent 0."""
    duration_s: float = 0.0
    replayed: bool = False
    """True when the response came from the log, not the provider (not counted as spend)."""


class ToolCallEvent(EventBase):
    """One tool call of an LLM role's loop (executed, or rejected as unusable)."""

    type: Literal["tool_call"] = "tool_call"
    subtask_id: str | None = None
    tool: str
    call_id: str = ""
    ok: bool = True
    error: str | None = None
    arguments: str = ""
    """The raw JSON arguments, capped."""
    duration_s: float = 0.0
    result: str | None = None
    """The tool result the model was shown (an error message for a failed or rejected call),
    its end kept; None when not recorded (logs before it was, and `submit`)."""

    @field_validator("arguments")
    @classmethod
    def _cap_arguments(cls, value: str) -> str:
        return text.head(value, CMD_CAP)

    @field_validator("result")
    @classmethod
    def _cap_result(cls, value: str | None) -> str | None:
        return None if value is None else text.tail(value, TAIL_CAP)


class LlmError(EventBase):
    """A model call that ended in a labcoat error (auth, quota, unavailable, ...)."""

    type: Literal["llm_error"] = "llm_error"
    role: str | None = None
    subtask_id: str | None = None
    model: str
    request_hash: str
    error: str
    """The error class name, e.g. `ModelAuthError`."""
    message: str = ""
    """The error's message (keys redacted)."""


class SubtaskFinished(EventBase):
    type: Literal["subtask_finished"] = "subtask_finished"
    subtask_id: str
    role: str
    attempt: int = Field(default=1, ge=1)
    commit: str | None = None
    """Set for results that are not graded; graded results get their commit in `graded`."""
    tree: str | None = None
    """The git tree of the role's result; grading commits it with the metric in the message."""
    summary: str = ""
    changed: bool = False
    artifacts: list[str] = Field(default_factory=list)
    critique: dict[str, Any] | None = None
    """A `Critique` dump, for reviewing roles."""


class SubtaskFailed(EventBase):
    type: Literal["subtask_failed"] = "subtask_failed"
    subtask_id: str
    role: str
    attempt: int = Field(default=1, ge=1)
    error: str


class Graded(EventBase):
    type: Literal["graded"] = "graded"
    subtask_id: str
    commit: str
    seed: int
    metrics: dict[str, float] = Field(default_factory=dict)
    metric: float | None = None
    """The primary metric (None when missing or grading failed)."""
    ok: bool = True
    error: str | None = None
    duration_s: float = 0.0


class CritiqueEvent(EventBase):
    type: Literal["critique"] = "critique"
    subtask_id: str
    """The critic's own subtask."""
    target: str
    verdict: Literal["reproducible", "not_reproducible", "suspicious", "ok"]
    reason: str = ""
    metrics_by_seed: dict[str, float] = Field(default_factory=dict)
    mean: float | None = None
    std: float | None = None


class IterationClosed(EventBase):
    type: Literal["iteration_closed"] = "iteration_closed"
    best_subtask: str | None = None
    best_metric: float | None = None
    improved: bool = False


class BudgetExhaustedEvent(EventBase):
    type: Literal["budget_exhausted"] = "budget_exhausted"
    kind: Literal["usd", "tokens", "time", "iterations"]
    limit: float
    spent: float


class RunPaused(EventBase):
    type: Literal["run_paused"] = "run_paused"
    reason: str


class RunFinished(EventBase):
    type: Literal["run_finished"] = "run_finished"
    reason: str
    best_subtask: str | None = None
    best_commit: str | None = None
    best_metric: float | None = None


class RunFailed(EventBase):
    type: Literal["run_failed"] = "run_failed"
    error: str


class LogRepaired(EventBase):
    type: Literal["log_repaired"] = "log_repaired"
    broken_copy: str
    """Path of the copy of the file as found, torn tail included."""
    dropped_bytes: int
    reason: str


EVENT_CLASSES: tuple[type[EventBase], ...] = (
    RunStarted, RunResumed, PlanProposed, SubtaskStarted, SandboxExec, LlmCall,
    SubtaskFinished, SubtaskFailed, Graded, CritiqueEvent, IterationClosed,
    BudgetExhaustedEvent, RunPaused, RunFinished, RunFailed, LogRepaired, ToolCallEvent,
    LlmError,
)

Event = Annotated[
    RunStarted | RunResumed | PlanProposed | SubtaskStarted | SandboxExec | LlmCall
    | SubtaskFinished | SubtaskFailed | Graded | CritiqueEvent | IterationClosed
    | BudgetExhaustedEvent | RunPaused | RunFinished | RunFailed | LogRepaired
    | ToolCallEvent | LlmError,
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
