"""`ManagedModel`: the one user-facing model. It owns retries, budget, events and replay.

    provider adapter (AnthropicModel, OpenAIModel, ScriptedModel)   -- one HTTP call, mapped errors
      ManagedModel.complete()
        1. hash the request (model, messages, tools, settings)
        2. replay: answer from the log while hashes match, no HTTP call, no spend
        3. budget check (estimated worst case), else BudgetExhausted
        4. call the adapter; tenacity retries only TransientReplyError (see retry.py)
        5. price the usage, charge the budget, emit `llm_call` (or `llm_error`)

Replay: `replay` maps request hash -> logged replies in log order (`wiring.replay_of(events)`).
After the first request whose hash is not there, replay is off for this model: the
conversation has diverged and everything after it is new work.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from labcoat.agents.llm.models.budget import Budget, estimate_prompt_tokens
from labcoat.agents.llm.models.pricing import ModelPrice, cost_of
from labcoat.agents.llm.models.retry import redact, transient_retry
from labcoat.agents.model import Message, Model, ModelReply, ModelSettings, ToolSpec
from labcoat.errors import LabcoatError

Emit = Callable[[str, Mapping[str, Any]], None]


def request_hash(
    model: str, messages: Sequence[Message], tools: Sequence[ToolSpec], settings: ModelSettings
) -> str:
    """A stable sha256 of everything that determines a reply."""
    body = {
        "model": model,
        "messages": [m.model_dump(mode="json") for m in messages],
        "tools": [t.model_dump(mode="json") for t in tools],
        "settings": settings.model_dump(mode="json"),
    }
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canon.encode()).hexdigest()


class ManagedModel:
    """Wraps a provider adapter; implements the `Model` protocol."""

    def __init__(
        self,
        api: Model,
        *,
        emit: Emit | None = None,
        budget: Budget | None = None,
        price: ModelPrice | None = None,
        replay: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
        role: str | None = None,
        reply_retries: int = 2,
        reply_retry_wait_s: float = 1.0,
        secrets: Sequence[str | None] = (),
    ) -> None:
        self.api: Model = api
        self.name: str = api.name
        self.emit = emit
        self.budget = budget or Budget()
        self.price = price
        self.role = role
        self.reply_retries = reply_retries
        self.reply_retry_wait_s = reply_retry_wait_s
        self._secrets = tuple(secrets)
        self._replay = {k: list(v) for k, v in (replay or {}).items()}
        self.replaying = bool(self._replay)
        self.calls = 0
        self.replayed = 0

    async def aclose(self) -> None:
        """Close the provider's HTTP connections (siblings from `with_role` share them)."""
        close = getattr(self.api, "aclose", None)
        if close is not None:
            await close()

    async def __aenter__(self) -> ManagedModel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def with_role(self, role: str, emit: Emit | None = None) -> ManagedModel:
        """A sibling sharing adapter, budget and replay log, tagged with another role."""
        twin = ManagedModel.__new__(ManagedModel)
        twin.__dict__.update(self.__dict__)
        twin.role, twin.emit = role, emit or self.emit
        return twin

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[ToolSpec] = (),
        settings: ModelSettings | None = None,
    ) -> ModelReply:
        settings = settings or ModelSettings()
        digest = request_hash(self.name, messages, tools, settings)
        logged = self._from_log(digest)
        if logged is not None:
            return logged
        self.budget.check(estimate_prompt_tokens(messages, tools), self.price, settings.max_tokens)
        started = time.monotonic()
        try:
            reply = await self._call(messages, tools, settings)
        except LabcoatError as err:
            self._emit_error(digest, err)
            raise
        reply = reply.model_copy(update={"cost_usd": cost_of(self.price, reply.usage)})
        self.budget.charge(reply.usage, reply.cost_usd)
        self._emit_call(digest, reply, time.monotonic() - started)
        return reply

    def _from_log(self, digest: str) -> ModelReply | None:
        if not self.replaying:
            return None
        queue = self._replay.get(digest)
        if not queue:
            self.replaying = False  # first divergence: everything from here is new work
            return None
        self.replayed += 1
        return ModelReply.model_validate(queue.pop(0))

    async def _call(
        self, messages: Sequence[Message], tools: Sequence[ToolSpec], settings: ModelSettings
    ) -> ModelReply:
        async def once() -> ModelReply:
            self.calls += 1
            return await self.api.complete(messages, tools=tools, settings=settings)

        return await transient_retry(
            once, attempts=1 + self.reply_retries, wait_s=self.reply_retry_wait_s
        )

    def _emit_call(self, digest: str, reply: ModelReply, duration_s: float) -> None:
        if self.emit is None:
            return
        fields = {
            "request_hash": digest,
            "model": self.name,
            "role": self.role,
            "reply": json.loads(redact(reply.model_dump_json(), self._secrets)),
            "usage": reply.usage.model_dump(),
            "cost_usd": reply.cost_usd,
            "duration_s": round(duration_s, 3),
            "spent_usd": round(self.budget.spent_usd, 6),
            "spent_tokens": self.budget.spent_tokens,
        }
        self.emit("llm_call", fields)

    def _emit_error(self, digest: str, err: LabcoatError) -> None:
        if self.emit is None:
            return
        message = redact(str(err), self._secrets)
        fields = {"request_hash": digest, "model": self.name, "role": self.role,
                  "error": type(err).__name__, "message": message}
        self.emit("llm_error", fields)
