"""Role code runs in its own thread: a role that blocks fails its own subtask at its time limit
while the run's event loop goes on; what the role uses crosses back to the run's loop."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from labcoat.agents.isolation import run_role_isolated
from labcoat.agents.llm.models import ScriptedModel, text_reply
from labcoat.agents.model import Message
from labcoat.agents.role import RoleContext, RoleResult, Subtask


def _subtask() -> Subtask:
    return Subtask(id="it001-01", iteration=1, role="r", instructions="x", base_commit="0" * 40)


def _ctx(events: list[tuple[str, int]], model: Any = None) -> RoleContext:
    async def grade(commit: str, seed: int) -> dict[str, float] | None:
        # Runs on the run's loop: the thread that owns it is the test's main thread.
        return {"score": float(seed), "thread": float(threading.get_ident())}

    def emit(kind: str, fields: Any) -> None:
        events.append((kind, threading.get_ident()))

    return RoleContext(run_id="r", spec=None, sandbox=None, emit=emit,  # type: ignore[arg-type]
                       grade=grade, model=model)


class Sleeper:
    name, description = "sleeper", "blocks its thread"

    async def run(self, subtask: Subtask, ctx: RoleContext) -> RoleResult:
        time.sleep(3600)  # a blocking call: no await, the role's loop cannot cancel it
        return RoleResult(summary="never")


class Worker:
    name, description = "worker", "uses what the context offers"

    async def run(self, subtask: Subtask, ctx: RoleContext) -> RoleResult:
        ctx.emit("sandbox_exec", {"cmd": "true"})
        graded = await ctx.grade("c" * 40, 7)
        assert ctx.model is not None
        reply = await ctx.model.complete([Message.user("hi")])
        return RoleResult(summary=f"{graded}|{reply.message.content}|{threading.get_ident()}")


@pytest.mark.slow
def test_a_blocking_role_fails_at_its_limit_while_the_loop_runs_on() -> None:
    async def main() -> tuple[RoleResult, int, float]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        beat = asyncio.create_task(ticker())
        started = time.monotonic()
        result = await run_role_isolated(Sleeper(), _subtask(), _ctx([]), timeout_s=0.5)
        beat.cancel()
        return result, ticks, time.monotonic() - started

    result, ticks, took = asyncio.run(main())
    assert not result.ok and "timed out" in (result.error or "")
    assert "blocked" in (result.error or "")
    assert took < 0.5 + 5.0 + 2.0  # its limit plus the cancel grace, not the hour it sleeps
    assert ticks >= 5  # the run's loop kept running while the role's thread was blocked


def test_emit_grade_and_model_cross_back_to_the_runs_thread() -> None:
    events: list[tuple[str, int]] = []
    model = ScriptedModel([text_reply("hello")])

    async def main() -> tuple[RoleResult, int]:
        result = await run_role_isolated(Worker(), _subtask(), _ctx(events, model), 30)
        return result, threading.get_ident()

    result, main_thread = asyncio.run(main())
    assert result.ok, result.error
    graded, said, role_thread = result.summary.split("|")
    assert int(role_thread) != main_thread  # the role ran elsewhere...
    assert f"'thread': {float(main_thread)}" in graded  # ...grading ran on the run's thread
    assert said == "hello" and len(model.calls) == 1
    assert events == [("sandbox_exec", main_thread)]  # and so did the log append
