"""Events about model calls: each call (replayable), each tool call of a role's loop, each
failure."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from labcoat import text
from labcoat.log.event_base import CMD_CAP, TAIL_CAP, EventBase


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
