"""Role code runs in a thread of its own, so a role that blocks cannot freeze the run.

A role's `run` is ordinary Python: `time.sleep(3600)` or a CPU-bound loop in it would stop
labcoat's event loop (grading, other subtasks, progress) if it ran there. So each role runs on
its own event loop in its own thread, and what it uses from the run crosses back to the run's
loop: sandbox calls, model calls, grading and `emit` are bridged, so the objects bound to the
run's loop (exec channels, HTTP clients, the journal) are only ever touched there.

    result = await run_role_isolated(role, subtask, ctx, timeout_s)

At `timeout_s` (real time) the subtask fails, whatever the role's code is doing; a role that
cannot be cancelled (it is blocked in a call) is abandoned in its daemon thread, and whatever
it does afterwards reaches nothing: its sandbox is removed and its result is ignored.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar

from labcoat.agents.guard import CANCEL_GRACE_S, run_role_guarded, timed_out
from labcoat.agents.model import Message, Model, ModelReply, ModelSettings, ToolSpec
from labcoat.agents.role import Emit, Role, RoleContext, RoleResult, Subtask
from labcoat.sandboxes.base import ExecResult, Sandbox

T = TypeVar("T")
EMIT_WAIT_S = 60.0
"""Longest a role's `emit` waits for the run's loop to take the event."""


class Bridge:
    """Runs coroutines on the run's loop for code running on another thread's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.thread = threading.get_ident()

    def on_owner(self) -> bool:
        """True when called from the run's own thread (then no crossing is needed)."""
        return threading.get_ident() == self.thread

    async def call(self, make: Callable[[], Awaitable[T]]) -> T:
        """`await make()` on the run's loop; from the run's thread, just await it."""
        if self.on_owner():
            return await make()
        crossing = asyncio.run_coroutine_threadsafe(_awaited(make), self.loop)
        return await asyncio.wrap_future(crossing)

    def emit(self, emit: Emit) -> Emit:
        """An `emit` that appends on the run's thread, in order, whoever calls it."""

        def bridged(type_: str, fields: Mapping[str, Any]) -> None:
            if self.on_owner():
                emit(type_, fields)
                return
            done: concurrent.futures.Future[None] = concurrent.futures.Future()
            self.loop.call_soon_threadsafe(_settle, done, emit, type_, dict(fields))
            done.result(timeout=EMIT_WAIT_S)

        return bridged


async def _awaited(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def _settle(done: concurrent.futures.Future[None], emit: Emit, type_: str,
            fields: Mapping[str, Any]) -> None:
    try:
        emit(type_, fields)
    except BaseException as err:  # the role's thread re-raises it (e.g. an unknown type)
        done.set_exception(err)
    else:
        done.set_result(None)


class BridgedSandbox:
    """A `Sandbox` whose calls run on the run's loop, where the real one lives."""

    def __init__(self, inner: Sandbox, bridge: Bridge) -> None:
        self.inner, self.bridge = inner, bridge
        self.id, self.spec = inner.id, inner.spec

    async def exec(self, cmd: str | Sequence[str], *, cwd: str | None = None,
                   env: Mapping[str, str] | None = None, timeout_s: float | None = None,
                   stdin: bytes | str | None = None) -> ExecResult:
        return await self.bridge.call(lambda: self.inner.exec(
            cmd, cwd=cwd, env=env, timeout_s=timeout_s, stdin=stdin))

    async def read_file(self, path: str, *, max_bytes: int = 10 * 1024 * 1024) -> bytes:
        return await self.bridge.call(lambda: self.inner.read_file(path, max_bytes=max_bytes))

    async def write_file(self, path: str, data: bytes | str) -> None:
        await self.bridge.call(lambda: self.inner.write_file(path, data))

    async def put_dir(self, src: Path, dest: str = "/workspace") -> None:
        await self.bridge.call(lambda: self.inner.put_dir(src, dest))

    async def get_dir(self, src: str, dest: Path, *, max_bytes: int | None = None) -> None:
        await self.bridge.call(lambda: self.inner.get_dir(src, dest, max_bytes=max_bytes))

    async def kill_all(self) -> int:
        return await self.bridge.call(self.inner.kill_all)

    async def aclose(self) -> None:
        await self.bridge.call(self.inner.aclose)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class BridgedModel:
    """A `Model` whose calls run on the run's loop (its HTTP client, budget and replay log
    live there); `with_role` keeps the bridge, as `labcoat.agents.llm.wiring.bind` expects."""

    def __init__(self, inner: Model, bridge: Bridge) -> None:
        self.inner, self.bridge = inner, bridge
        self.name = inner.name

    async def complete(self, messages: Sequence[Message], *, tools: Sequence[ToolSpec] = (),
                       settings: ModelSettings | None = None) -> ModelReply:
        return await self.bridge.call(lambda: self.inner.complete(
            messages, tools=tools, settings=settings))

    def with_role(self, role: str, emit: Emit | None = None) -> BridgedModel:
        rebind = getattr(self.inner, "with_role", None)
        if rebind is None:
            return self
        bridged = self.bridge.emit(emit) if emit is not None else None
        return BridgedModel(rebind(role, emit=bridged), self.bridge)


def bridged_context(ctx: RoleContext, bridge: Bridge) -> RoleContext:
    """`ctx` with everything that touches the run's loop going through `bridge`."""
    grade = ctx.grade

    async def grade_bridged(commit: str, seed: int) -> dict[str, float] | None:
        return await bridge.call(lambda: grade(commit, seed))

    return dataclasses.replace(
        ctx, emit=bridge.emit(ctx.emit), grade=grade_bridged,
        sandbox=BridgedSandbox(ctx.sandbox, bridge) if ctx.sandbox is not None else None,
        model=BridgedModel(ctx.model, bridge) if ctx.model is not None else None)


class _RoleThread(threading.Thread):
    """Runs one role on a fresh event loop; its outcome lands in `outcome`."""

    def __init__(self, role: Role, subtask: Subtask, ctx: RoleContext,
                 timeout_s: float | None) -> None:
        super().__init__(name=f"labcoat-role-{subtask.id}", daemon=True)
        self.role, self.subtask, self.ctx, self.timeout_s = role, subtask, ctx, timeout_s
        self.outcome: concurrent.futures.Future[RoleResult] = concurrent.futures.Future()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task[Any] | None = None

    def run(self) -> None:
        try:
            result = asyncio.run(self._main())
        except BaseException as err:  # infrastructure errors travel back to the run
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                self.outcome.set_exception(err)  # unless the run stopped waiting (cancelled)
        else:
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                self.outcome.set_result(result)

    async def _main(self) -> RoleResult:
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        return await run_role_guarded(self.role, self.subtask, self.ctx, self.timeout_s)

    def cancel(self) -> None:
        """Ask the role's loop to cancel it (a blocked role notices only when it unblocks)."""
        if self.loop is not None and self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)


async def run_role_isolated(role: Role, subtask: Subtask, ctx: RoleContext,
                            timeout_s: float | None) -> RoleResult:
    """Run `role` in its own thread; fail its subtask at `timeout_s` of real time."""
    worker = _RoleThread(role, subtask, bridged_context(ctx, Bridge(asyncio.get_running_loop())),
                         timeout_s)
    worker.start()
    deadline = None if timeout_s is None else timeout_s + CANCEL_GRACE_S
    try:
        return await _waited(asyncio.wrap_future(worker.outcome), deadline)
    except TimeoutError:
        worker.cancel()
        return timed_out(getattr(role, "name", type(role).__name__), timeout_s or 0.0,
                         blocked=True)
    except asyncio.CancelledError:
        worker.cancel()
        raise


async def _waited(pending: Awaitable[RoleResult], deadline: float | None) -> RoleResult:
    return await asyncio.wait_for(pending, deadline)
