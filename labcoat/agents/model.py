"""The Model protocol and the provider-neutral message format every backend speaks.

A conversation is a list of `Message`s: `system`, `user`, `assistant` (text and/or tool calls)
and `tool` (one tool result, answering a call by id). Adapters translate this to and from the
Anthropic Messages and OpenAI Chat Completions shapes; roles and the tool loop never see those.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, JsonValue

StopReason = Literal["end", "tool_use", "max_tokens", "refusal", "content_filter", "other"]


class ToolCall(BaseModel):
    """One tool call the model asked for. `arguments` is None when the raw JSON did not parse."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    arguments: dict[str, JsonValue] | None = None
    """Parsed arguments; None when `raw_arguments` is not a JSON object (never executed)."""
    raw_arguments: str = ""
    """The arguments exactly as the provider sent them (JSON text)."""


class Message(BaseModel):
    """One turn of a conversation, in labcoat's own provider-neutral shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    """Assistant only: the calls, in order."""
    tool_call_id: str | None = None
    """Tool only: the call this result answers."""
    is_error: bool = False
    """Tool only: the result is an error the model should react to."""

    @classmethod
    def system(cls, text: str) -> Message:
        return cls(role="system", content=text)

    @classmethod
    def user(cls, text: str) -> Message:
        return cls(role="user", content=text)

    @classmethod
    def tool(cls, call_id: str, text: str, *, is_error: bool = False) -> Message:
        return cls(role="tool", content=text, tool_call_id=call_id, is_error=is_error)


def _empty_object_schema() -> dict[str, JsonValue]:
    return {"type": "object", "properties": {}}


class ToolSpec(BaseModel):
    """A tool the model may call: a name, what it does, and a JSON schema for its arguments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str
    parameters: dict[str, JsonValue] = Field(default_factory=_empty_object_schema)
    """JSON schema of the arguments object."""


class ModelSettings(BaseModel):
    """Per-call generation settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_tokens: int = 4096
    """Upper bound on output tokens; a reply that hits it is `stop_reason="max_tokens"`."""
    temperature: float | None = None
    """None keeps the provider's default."""


class Usage(BaseModel):
    """Token counts of one call (or a sum). `input_tokens` excludes cached input tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    """Input tokens served from the provider's prompt cache (priced on their own)."""
    cache_write_tokens: int = 0
    """Input tokens written to the prompt cache (Anthropic prices them above plain input)."""

    @property
    def total_tokens(self) -> int:
        cached = self.cache_read_tokens + self.cache_write_tokens
        return self.input_tokens + self.output_tokens + cached

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
        )


class ModelReply(BaseModel):
    """What one call returns: the assistant message, why it stopped, usage and cost."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message: Message
    stop_reason: StopReason
    usage: Usage = Usage()
    cost_usd: float | None = None
    """Dollars for this call; None means *unknown* (local or unpriced model), never a silent 0."""
    model: str = ""
    """The model name the provider reported."""
    provider_stop: str = ""
    """The provider's own stop/finish reason, verbatim."""

    @property
    def truncated(self) -> bool:
        """The reply was cut at the output limit: its tool calls must never be executed."""
        return self.stop_reason == "max_tokens"


@runtime_checkable
class Model(Protocol):
    """Anything that answers a conversation: provider adapters, the wrapper, `ScriptedModel`."""

    name: str

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        settings: ModelSettings | None = None,
    ) -> ModelReply: ...
