"""Helpers shared by the model tests: one model per SDK shape, against a fake server."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from labcoat.agents.llm.models import ManagedModel, Message, build_model

from .servers import FakeAnthropic, FakeOpenAI, FakeServer

T = TypeVar("T")
CANARY = "sk-canary-XYZ-0123456789"
SHAPES = ("openai", "anthropic")
SPECS = {"openai": "openai:gpt-4o", "anthropic": "anthropic:claude-haiku-4-5"}


def server_for(shape: str, script: list[Any]) -> FakeServer:
    return FakeOpenAI(script) if shape == "openai" else FakeAnthropic(script)


def model_for(shape: str, srv: FakeServer, **kw: Any) -> ManagedModel:
    kw.setdefault("api_key", CANARY)
    kw.setdefault("reply_retry_wait_s", 0.0)
    return build_model(kw.pop("spec", SPECS[shape]), base_url=srv.base_url, **kw)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def ask(model: ManagedModel, text: str = "hello", **kw: Any) -> Any:
    """One call, then close the model (its HTTP pool belongs to this event loop)."""
    return run(ask_async(model, text, close=True, **kw))


async def ask_async(model: ManagedModel, text: str = "hello", *, close: bool = False,
                    **kw: Any) -> Any:
    try:
        return await model.complete([Message.system("be brief"), Message.user(text)], **kw)
    finally:
        if close:
            await model.aclose()
