"""OpenAI Chat Completions adapter, also for OpenAI-compatible servers (vLLM, Ollama, llama.cpp).

Point it at a local server with `base_url` (or the SDK's own `OPENAI_BASE_URL`). Compatible
servers differ in small ways handled here: some answer HTTP 200 with `{"error": ...}`, some
say `finish_reason: "stop"` next to tool calls, some only know `max_tokens`.
Imported lazily by `build_model`: `import openai` costs about two seconds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import openai
from openai.types import CompletionUsage
from openai.types.chat import (
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageToolCallUnion,
)

from labcoat.agents.llm.models.retry import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_S,
    TransientReplyError,
    map_status,
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
from labcoat.errors import ModelError

_FINISH: dict[str, StopReason] = {
    "stop": "end",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "content_filter",
}



class OpenAIModel(SdkModel):
    """One Chat Completions call per `complete`; SDK errors mapped to labcoat errors."""

    sdk_error = openai.OpenAIError

    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_tokens_param: str = "max_completion_tokens",
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        super().__init__(model, api_key)
        self.max_tokens_param = max_tokens_param
        """`max_tokens` for compatible servers that predate `max_completion_tokens`."""
        self.client = client or sdk_client(
            openai.AsyncOpenAI, openai.DefaultAsyncHttpxClient, api_key, base_url,
            max_retries=max_retries, timeout_s=timeout_s,
        )
        self.where = f"openai ({self.client.base_url})"

    async def send(self, request: dict[str, Any]) -> Any:
        return await self.client.chat.completions.create(**request)

    def parse(self, response: object) -> ModelReply:
        return parse_response(response, self.where)

    def build_request(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], settings: ModelSettings
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.name,
            "messages": [convert_message(m) for m in messages],
            self.max_tokens_param: settings.max_tokens,
        }
        if tools:
            request["tools"] = [_tool(t) for t in tools]
        if settings.temperature is not None:
            request["temperature"] = settings.temperature
        return request

    async def aclose(self) -> None:
        """Close the HTTP connections. Call once the run is done (or use `ManagedModel` as
        `async with`)."""
        await self.client.close()



def _tool(t: ToolSpec) -> dict[str, Any]:
    function = {"name": t.name, "description": t.description, "parameters": t.parameters}
    return {"type": "function", "function": function}


def convert_message(m: Message) -> dict[str, Any]:
    if m.role == "tool":
        return {"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content}
    if m.role != "assistant" or not m.tool_calls:
        return {"role": m.role, "content": m.content}
    calls = [{"id": c.id, "type": "function",
              "function": {"name": c.name, "arguments": c.raw_arguments or "{}"}}
             for c in m.tool_calls]
    return {"role": "assistant", "content": m.content or None, "tool_calls": calls}


def parse_response(response: object, where: str) -> ModelReply:
    """SDK `ChatCompletion` to `ModelReply`; a 200 that is not a completion is classified."""
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise _not_a_completion(response, where)
    choice = choices[0]
    message = choice.message
    calls = tuple(_tool_call(c) for c in (message.tool_calls or []))
    finish = choice.finish_reason or ""
    return ModelReply(
        message=Message(role="assistant", content=message.content or "", tool_calls=calls),
        stop_reason=_stop_reason(finish, bool(calls), getattr(message, "refusal", None)),
        usage=_usage(getattr(response, "usage", None)),
        model=getattr(response, "model", "") or "",
        provider_stop=finish,
    )


def _not_a_completion(response: object, where: str) -> Exception:
    """A 200 carrying `{"error": ...}` (or an HTML page): fatal kinds mapped, the rest retried."""
    extra = getattr(response, "model_extra", None) or {}
    body = {"error": extra["error"]} if "error" in extra else response
    error = map_status(400, body, where)
    if type(error) is not ModelError:
        return error  # quota, context overflow or auth reported inside a 200
    return TransientReplyError(f"{where}: HTTP 200 without a completion: {str(body)[:300]}")


def _stop_reason(finish: str, has_calls: bool, refusal: str | None) -> StopReason:
    if finish == "length":
        return "max_tokens"
    if refusal:
        return "refusal"
    if has_calls:
        return "tool_use"  # some servers say "stop" next to tool calls
    return _FINISH.get(finish, "other")


def _tool_call(call: ChatCompletionMessageToolCallUnion) -> ToolCall:
    if not isinstance(call, ChatCompletionMessageFunctionToolCall):
        return ToolCall(id=call.id or "", name=getattr(call, "type", "") or "custom",
                        arguments=None, raw_arguments="")
    raw = call.function.arguments or ""
    try:
        parsed = json.loads(raw) if raw.strip() else {}
    except ValueError:
        parsed = None
    args = parsed if isinstance(parsed, dict) else None
    return ToolCall(id=call.id or "", name=call.function.name or "", arguments=args,
                    raw_arguments=raw)


def _usage(usage: CompletionUsage | None) -> Usage:
    if usage is None:
        return Usage()
    details = getattr(usage, "prompt_tokens_details", None)
    cached = (getattr(details, "cached_tokens", None) or 0) if details else 0
    return Usage(
        input_tokens=max(0, (usage.prompt_tokens or 0) - cached),
        output_tokens=usage.completion_tokens or 0,
        cache_read_tokens=cached,
    )
