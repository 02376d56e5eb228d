"""What every event of the log shares: the envelope (`EventBase`) and the caps on long text.

The event types live beside it by theme (`run_events`, `work_events`, `model_events`);
`labcoat.log.events` gathers them into one union and says what each schema version holds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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
    "note_added", "approval_decided", "stop_requested", "subtask_cancelled",
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
