"""Anthropic Messages API adapter (tool use, prompt caching of the stable prefix).

The stable prefix of every request of a role (system prompt + tool definitions) carries a
`cache_control` breakpoint, so repeated turns read it from the prompt cache at a tenth of the
input price. Imported lazily by `build_model`: `import anthropic` costs about two seconds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

import anthropic

from labcoat.agents.llm.models.retry import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_S,
    TransientReplyError,
    sdk_client,
)
from labcoat.agents.llm.models.sdk import SdkModel
from labcoat.agents.model import (
    Message,
    ModelReply,
    ModelSettings,
    StopReason,
    ToolCall,
    ToolSpec,
    Usage,
)

_STOP: dict[str, StopReason] = {
    "end_turn": "end",
    "stop_sequence": "end",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "model_context_window_exceeded": "max_tokens",
    "refusal": "refusal",
}
_CACHE = {"type": "ephemeral"}



class AnthropicModel(SdkModel):
    """One Messages API call per `complete`; SDK errors mapped to labcoat errors."""

    sdk_error = anthropic.AnthropicError

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        client: anthropic.AsyncAnthropic | None = None,
    ) -> None:
        super().__init__(model, api_key)
        self.client = client or sdk_client(
            anthropic.AsyncAnthropic, anthropic.DefaultAsyncHttpxClient, api_key, base_url,
            max_retries=max_retries, timeout_s=timeout_s,
        )
        self.where = f"anthropic ({self.client.base_url})"

    def build_request(self, messages: Sequence[Message], tools: Sequence[ToolSpec],
                      settings: ModelSettings) -> dict[str, Any]:
        return build_request(self.name, messages, tools, settings)

    async def send(self, request: dict[str, Any]) -> Any:
        return await self.client.messages.create(**request)

    def parse(self, response: object) -> ModelReply:
        return parse_response(response, self.where)

    async def aclose(self) -> None:
        """Close the HTTP connections. Call once the run is done (or use `ManagedModel` as
        `async with`)."""
        await self.client.close()


def build_request(
    model: str, messages: Sequence[Message], tools: Sequence[ToolSpec], settings: ModelSettings
) -> dict[str, Any]:
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    request: dict[str, Any] = {
        "model": model,
        "max_tokens": settings.max_tokens,
        "messages": convert_messages([m for m in messages if m.role != "system"]),
    }
    if system:
        request["system"] = [{"type": "text", "text": system, "cache_control": _CACHE}]
    if tools:
        request["tools"] = convert_tools(tools)
    if settings.temperature is not None:
        request["temperature"] = settings.temperature
    return request


def convert_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    specs = [{"name": t.name, "description": t.description, "input_schema": t.parameters}
             for t in tools]
    specs[-1]["cache_control"] = _CACHE  # breakpoint after the last tool caches them all
    return specs


def convert_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Neutral messages to Anthropic turns; consecutive tool results share one user turn."""
    out: list[dict[str, Any]] = []
    for m in messages:
        blocks = _blocks(m)
        role = "assistant" if m.role == "assistant" else "user"
        if out and out[-1]["role"] == role and role == "user":
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    return out


def _blocks(m: Message) -> list[dict[str, Any]]:
    if m.role == "tool":
        return [{"type": "tool_result", "tool_use_id": m.tool_call_id,
                 "content": m.content or "(no output)", "is_error": m.is_error}]
    blocks: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
    for call in m.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name,
                       "input": call.arguments or {}})
    return blocks or [{"type": "text", "text": "(empty)"}]


def parse_response(response: object, where: str) -> ModelReply:
    """SDK `Message` to `ModelReply`; a body that is not a message is a transient failure."""
    content = getattr(response, "content", None)
    if getattr(response, "type", None) == "error" or not isinstance(content, list):
        error = getattr(response, "error", None) or response
        raise TransientReplyError(f"{where}: the reply is not a message: {str(error)[:300]}")
    response = cast(anthropic.types.Message, response)  # the SDK parsed it into a Message
    text = "".join(b.text for b in content if getattr(b, "type", "") == "text")
    calls = tuple(_tool_call(b) for b in content if getattr(b, "type", "") == "tool_use")
    stop = response.stop_reason or ""
    return ModelReply(
        message=Message(role="assistant", content=text, tool_calls=calls),
        stop_reason=_STOP.get(stop, "other"),
        usage=_usage(response.usage),
        model=response.model or "",
        provider_stop=stop,
    )


def _tool_call(block: anthropic.types.ToolUseBlock) -> ToolCall:
    args = block.input
    raw = json.dumps(args) if not isinstance(args, str) else args
    return ToolCall(id=block.id, name=block.name,
                    arguments=args if isinstance(args, dict) else None, raw_arguments=raw)


def _usage(usage: anthropic.types.Usage | None) -> Usage:
    if usage is None:
        return Usage()
    return Usage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
    )
