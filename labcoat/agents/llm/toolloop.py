"""The one tool loop every LLM role runs: ask the model, execute its tool calls, repeat.

    outcome = await run_tool_loop(model, system=..., task=..., sandbox=box,
                                  limits=LoopLimits(max_turns=30), emit=ctx.emit,
                                  run_cmd=spec.run)

Ends when the model calls `submit` (`Submitted`), when a limit on turns, tokens or time is
reached (`LimitsExceeded`), or when the model cannot produce a usable call: three bad calls in a
row (unknown tool, malformed JSON, invalid arguments, no call at all, a truncated reply) or a
refusal. Bad calls are never executed: the error goes back to the model as the tool result.
Model and sandbox *infrastructure* errors (auth, quota, budget, Docker) propagate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from labcoat.agents.llm.tools import DEFAULT_TOOLS, Submitted, Tool, ToolEnv, ToolError
from labcoat.agents.model import Message, Model, ModelReply, ModelSettings, ToolCall, Usage
from labcoat.sandboxes.base import Sandbox
from labcoat.text import middle

Emit = Callable[[str, Mapping[str, Any]], None]

NUDGE = "Reply with a tool call. When the subtask is done, call `submit` with a summary."


class LoopLimits(BaseModel):
    """Bounds of one role's loop."""

    model_config = ConfigDict(extra="forbid")

    max_turns: int = 40
    """Model calls at most."""
    max_tokens: int = 500_000
    """Tokens (input + output, cached included) over the whole loop."""
    max_seconds: float = 3600.0
    """Wall-clock time; checked before each model call."""
    max_bad_calls: int = 3
    """Consecutive unusable replies before the subtask fails."""
    max_output_tokens: int = 4096
    """Per reply; a reply that hits it is truncated and never executed."""
    exec_timeout_s: float = 600.0
    """Default timeout of `bash` and `run_experiment`."""


class LoopOutcome(BaseModel):
    """How the loop ended. `status="submitted"` is the only success."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Literal["submitted", "limits", "failed"]
    summary: str = ""
    reason: str = ""
    turns: int = 0
    usage: Usage = Usage()
    cost_usd: float | None = 0.0
    """None when any call's cost was unknown."""


class LimitsExceeded(Exception):
    """A turn/token/time limit was reached; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Failed(Exception):
    """The model cannot produce usable calls (bad-call streak, refusal)."""


class _BadCall(Exception):
    """One unusable call: reported to the model, never executed."""


async def run_tool_loop(
    model: Model,
    *,
    system: str,
    task: str,
    sandbox: Sandbox | None,
    tools: Sequence[Tool] = DEFAULT_TOOLS,
    limits: LoopLimits | None = None,
    emit: Emit | None = None,
    run_cmd: str | None = None,
) -> LoopOutcome:
    """Run the loop to its end; never raises for model-visible problems."""
    loop = _Loop(model, tools, limits or LoopLimits(), emit, sandbox, run_cmd)
    return await loop.run([Message.system(system), Message.user(task)])


class _Loop:
    def __init__(self, model: Model, tools: Sequence[Tool], limits: LoopLimits,
                 emit: Emit | None, sandbox: Sandbox | None, run_cmd: str | None) -> None:
        self.model, self.limits, self.emit = model, limits, emit
        self.tools = {t.name: t for t in tools}
        self.specs = [t.spec for t in tools]
        self.env = ToolEnv(sandbox, run_cmd, limits.exec_timeout_s)
        self.settings = ModelSettings(max_tokens=limits.max_output_tokens)
        self.messages: list[Message] = []
        self.turns, self.bad_streak = 0, 0
        self.usage, self.cost = Usage(), 0.0
        self.cost_known = True
        self.started = time.monotonic()

    async def run(self, messages: list[Message]) -> LoopOutcome:
        self.messages = messages
        try:
            while True:
                self._check_limits()
                reply = await self.model.complete(self.messages, tools=self.specs,
                                                  settings=self.settings)
                self._account(reply)
                await self._handle(reply)
        except Submitted as done:
            return self._outcome("submitted", summary=done.summary)
        except LimitsExceeded as stop:
            return self._outcome("limits", reason=stop.reason)
        except _Failed as fail:
            return self._outcome("failed", reason=str(fail))

    def _check_limits(self) -> None:
        lim = self.limits
        if self.turns >= lim.max_turns:
            raise LimitsExceeded(f"turn limit reached ({lim.max_turns} model calls)")
        if self.usage.total_tokens >= lim.max_tokens:
            raise LimitsExceeded(f"token limit reached ({self.usage.total_tokens} of "
                                 f"{lim.max_tokens})")
        if time.monotonic() - self.started >= lim.max_seconds:
            raise LimitsExceeded(f"time limit reached ({lim.max_seconds:.0f} s)")

    def _account(self, reply: ModelReply) -> None:
        self.turns += 1
        self.usage += reply.usage
        if reply.cost_usd is None:
            self.cost_known = False
        else:
            self.cost += reply.cost_usd
        self.messages.append(reply.message)

    async def _handle(self, reply: ModelReply) -> None:
        calls = reply.message.tool_calls
        if reply.stop_reason == "refusal":
            raise _Failed(f"the model refused: {middle(reply.message.content, 300) or '(no text)'}")
        if reply.truncated:
            self._reject(calls, "your reply was cut at the output token limit, so nothing in it "
                         "was executed. Send shorter tool calls (e.g. write big files in parts).")
            return
        if not calls:
            self.messages.append(Message.user(NUDGE))
            self._bad("a reply without a tool call")
            return
        for call in calls:
            self.messages.append(await self._dispatch(call))

    def _reject(self, calls: Sequence[ToolCall], why: str) -> None:
        for call in calls:
            self.messages.append(Message.tool(call.id, f"error: {why}", is_error=True))
        if not calls:
            self.messages.append(Message.user(f"Error: {why}"))
        self._bad(f"a truncated reply ({why.split(',')[0]})")

    def _bad(self, what: str) -> None:
        self.bad_streak += 1
        if self.bad_streak >= self.limits.max_bad_calls:
            raise _Failed(f"{self.bad_streak} unusable tool calls in a row; the last was {what}")

    async def _dispatch(self, call: ToolCall) -> Message:
        started = time.monotonic()
        try:
            tool, args = self._validate(call)
        except _BadCall as bad:
            shown = self._record(call, started, f"rejected: {bad}", f"error: {bad}")
            self._bad(f"{call.name!r}: {bad}")
            return shown
        self.bad_streak = 0
        try:
            output = await tool.run(args, self.env)
        except ToolError as err:
            return self._record(call, started, str(err), f"error: {err}")
        except Submitted:
            self._record(call, started, None, None)
            raise
        return self._record(call, started, None, output)

    def _validate(self, call: ToolCall) -> tuple[Tool, BaseModel]:
        tool = self.tools.get(call.name)
        if tool is None:
            raise _BadCall(f"unknown tool {call.name!r}; available: {', '.join(self.tools)}")
        if call.arguments is None:
            raw = middle(call.raw_arguments, 300)
            raise _BadCall(f"the arguments of {call.name} are not a JSON object: {raw}")
        try:
            return tool, tool.args.model_validate(call.arguments)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}"
                                 for e in err.errors())
            raise _BadCall(f"invalid arguments for {call.name}: {problems}") from None

    def _record(self, call: ToolCall, started: float, error: str | None,
                result: str | None) -> Message:
        """Log the call with the `result` the model is shown (None: `submit` ended the loop),
        and return that result as the tool message."""
        if self.emit is not None:
            self.emit("tool_call", {
                "tool": call.name, "call_id": call.id, "ok": error is None, "error": error,
                "arguments": middle(call.raw_arguments, 2000), "result": result,
                "duration_s": round(time.monotonic() - started, 3)})
        return Message.tool(call.id, result or "", is_error=error is not None)

    def _outcome(self, status: Literal["submitted", "limits", "failed"], *, summary: str = "",
                 reason: str = "") -> LoopOutcome:
        return LoopOutcome(status=status, summary=summary, reason=reason, turns=self.turns,
                           usage=self.usage, cost_usd=self.cost if self.cost_known else None)
