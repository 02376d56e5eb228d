"""What both provider adapters share: one SDK call per `complete`, its errors mapped to labcoat's,
its response parsed into a `ModelReply`. Each adapter says how to build the request, send it,
and read the response (`AnthropicModel`, `OpenAIModel`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from labcoat.agents.llm.models.retry import mapped_error
from labcoat.agents.model import Message, ModelReply, ModelSettings, ToolSpec


class SdkModel:
    """Base of the SDK adapters; implements the `Model` protocol."""

    name: str
    where: str
    """`provider (base URL)`, for messages."""
    sdk_error: type[Exception] = Exception
    """The SDK's base exception class: everything it raises is mapped."""

    def __init__(self, model: str, api_key: str) -> None:
        self.name, self._key = model, api_key

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        settings: ModelSettings | None = None,
    ) -> ModelReply:
        request = self.build_request(messages, tools, settings or ModelSettings())
        try:
            response = await self.send(request)
        except self.sdk_error as err:
            raise mapped_error(err, self.where, self._key) from None
        return self.parse(response)

    def build_request(self, messages: Sequence[Message], tools: Sequence[ToolSpec],
                      settings: ModelSettings) -> dict[str, Any]:
        raise NotImplementedError

    async def send(self, request: dict[str, Any]) -> Any:
        """One SDK call with `request`; returns the SDK's response object."""
        raise NotImplementedError

    def parse(self, response: object) -> ModelReply:
        raise NotImplementedError
