"""`ScriptedModel`: a FIFO of replies for testing roles without any provider.

    model = ScriptedModel([
        tool_reply("bash", {"command": "ls"}),
        tool_reply("submit", {"summary": "done"}),
    ])
    ...  # run your role with ManagedModel(model) or the bare model
    model.assert_complete()
    model.calls[0].messages  # what the role sent

Script items: a `ModelReply`, a plain string (a text reply), an exception instance (raised),
or a callable `(ScriptedCall) -> ModelReply` for replies that depend on the request.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pydantic import JsonValue

from labcoat.agents.model import (
    Message,
    ModelReply,
    ModelSettings,
    StopReason,
    ToolCall,
    ToolSpec,
    Usage,
)


@dataclass(frozen=True)
class ScriptedCall:
    """One request the scripted model received."""

    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...]
    settings: ModelSettings


ScriptItem = ModelReply | str | BaseException | Callable[[ScriptedCall], ModelReply]


def text_reply(
    text: str, *, stop_reason: StopReason = "end", usage: Usage | None = None
) -> ModelReply:
    """An assistant reply with text and no tool call."""
    message = Message(role="assistant", content=text)
    return ModelReply(message=message, stop_reason=stop_reason, usage=usage or Usage())


def tool_reply(
    name: str,
    arguments: dict[str, JsonValue] | str | None = None,
    *,
    text: str = "",
    call_id: str | None = None,
    stop_reason: StopReason = "tool_use",
    usage: Usage | None = None,
) -> ModelReply:
    """An assistant reply with one tool call; a string `arguments` is sent raw (maybe malformed)."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    call = ToolCall(id=call_id or f"call_{uuid.uuid4().hex[:12]}", name=name,
                    arguments=_parse_args(raw), raw_arguments=raw)
    message = Message(role="assistant", content=text, tool_calls=(call,))
    return ModelReply(message=message, stop_reason=stop_reason, usage=usage or Usage())


def _parse_args(raw: str) -> dict[str, JsonValue] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class ScriptedModel:
    """Implements `Model` from a script. Runs out loudly: an exhausted script raises."""

    def __init__(self, script: Iterable[ScriptItem] = (), *, name: str = "scripted") -> None:
        self.name = name
        self.script: list[ScriptItem] = list(script)
        self.calls: list[ScriptedCall] = []

    def add(self, *items: ScriptItem) -> None:
        self.script.extend(items)

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        settings: ModelSettings | None = None,
    ) -> ModelReply:
        call = ScriptedCall(tuple(messages), tuple(tools), settings or ModelSettings())
        self.calls.append(call)
        if not self.script:
            n = len(self.calls)
            raise AssertionError(f"ScriptedModel {self.name!r}: call {n} has no scripted reply")
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, str):
            return text_reply(item)
        return item if isinstance(item, ModelReply) else item(call)

    def assert_complete(self) -> None:
        """Fail when replies are left: the code under test stopped earlier than scripted."""
        if self.script:
            raise AssertionError(
                f"ScriptedModel {self.name!r}: {len(self.script)} scripted replies never requested"
            )
