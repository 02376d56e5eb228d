"""`RaySandbox`: labcoat's side of a sandbox that lives on a cluster node.

Every operation is one call to the sandbox's actor (`host.SandboxHost`) on its node. What the
node's sandbox raises on purpose (a file that is not there, an unsafe output, its container
dying) is raised here as the same exception, named with the node; a failure of the cluster
itself (the actor's process or its whole node gone, the call never answered) is
`SandboxUnavailable`: the outcome is unknown, so the caller retries in a fresh sandbox, which Ray
places on a node that is still there. Such failures are reported to the provider (`Faults`),
which logs a lost node once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar

from labcoat.errors import SandboxUnavailable, first_line
from labcoat.sandboxes import files
from labcoat.sandboxes.base import ExecResult, SandboxSpec
from labcoat.sandboxes.ray import direct, wire

if TYPE_CHECKING:
    from ray.actor import ActorHandle

T = TypeVar("T")
CALL_GRACE_S = 120.0
"""How long past a command's own timeout its answer may take before the node counts as gone."""
FILE_CALL_S = 600.0
"""How long one file operation or close may take."""


class Faults(Protocol):
    """What a sandbox tells its provider when the cluster failed under it."""

    async def lost(self, node: wire.NodeInfo, spec: SandboxSpec, err: BaseException) -> str:
        """Why the call failed, in words (the node was lost, or only the actor died)."""
        ...


OnClose = Callable[["RaySandbox", bool], Awaitable[None]]
"""Told when a sandbox closes, and whether its actor may host another one."""


def infrastructure_errors() -> tuple[type[BaseException], ...]:
    """What Ray raises when the cluster, not the sandbox, failed."""
    from ray import exceptions as rx

    return (rx.RayActorError, rx.WorkerCrashedError, rx.ObjectLostError, rx.NodeDiedError,
            rx.LocalRayletDiedError, rx.RaySystemError, rx.OutOfMemoryError, TimeoutError,
            ConnectionError)


class RaySandbox:
    """A sandbox on a cluster node. Use as `async with`; `aclose()` removes it (idempotent)."""

    def __init__(self, actor: ActorHandle, opened: wire.Opened, spec: SandboxSpec,
                 faults: Faults, on_close: OnClose) -> None:
        self.actor, self.faults, self._on_close = actor, faults, on_close
        self.spec = spec.model_copy(update={"gpu_ids": opened.gpu_ids})
        self.id, self.name, self.node = opened.id, opened.name, opened.node
        self.scratch = Path(opened.scratch)
        """The folder behind /workspace on the node (on the node's disk, not necessarily
        this machine's)."""
        self.closed = False
        self._line_at = opened.line
        self._line: direct.Line | None = None  # opened at the first command
        self._line_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"RaySandbox({self.name} on {self.node.name})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _check_open(self) -> None:
        if self.closed or not _connected():
            raise SandboxUnavailable(f"sandbox {self.name} is closed (or labcoat left the "
                                     "cluster)")

    async def _call(self, method: str, *args: Any, what: str,
                    timeout_s: float | None = FILE_CALL_S) -> Any:
        self._check_open()
        ref = getattr(self.actor, method).remote(*args)
        try:
            return await asyncio.wait_for(awaited(ref), timeout_s)
        except infrastructure_errors() as err:
            raise await self._interrupted(what, err) from None
        except Exception as err:
            raise _unwrapped(err, self.node) from None

    async def _interrupted(self, what: str, err: BaseException) -> SandboxUnavailable:
        why = await self.faults.lost(self.node, self.spec, err)
        return SandboxUnavailable(
            f"sandbox {self.name} on node {self.node.name}: {what} was interrupted because "
            f"{why}; its outcome is unknown. This is an infrastructure failure, not the "
            "task's: retry in a new sandbox (Ray places it on a node that is up)")

    async def exec(self, cmd: str | Sequence[str], *, cwd: str | None = None,
                   env: Mapping[str, str] | None = None, timeout_s: float | None = None,
                   stdin: bytes | str | None = None) -> ExecResult:
        """Run `cmd` on the node's sandbox; the same contract as `DockerSandbox.exec`. Sent on
        the sandbox's direct line when there is one, else as a Ray call."""
        argv: str | list[str] = cmd if isinstance(cmd, str) else list(cmd)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        backstop = None if timeout_s is None else timeout_s + CALL_GRACE_S
        line = await self._line_up()
        if line is None:
            reply = await self._call("exec", argv, cwd, dict(env or {}), timeout_s, data,
                                     what="the command", timeout_s=backstop)
            return ExecResult.model_validate(reply)
        self._check_open()
        call: dict[str, object] = {"argv": argv, "cwd": cwd, "env": dict(env or {}),
                                   "timeout_s": timeout_s}
        try:
            return await line.exec(call, data, backstop)
        except (ConnectionError, TimeoutError) as err:
            raise await self._interrupted("the command", err) from None
        except RuntimeError as err:  # the node's sandbox failed it (its container died)
            said = str(err).removeprefix(f"{SandboxUnavailable.__name__}: ")
            raise SandboxUnavailable(f"on node {self.node.name}: {said}") from None

    async def _line_up(self) -> direct.Line | None:
        """The direct line, opened at the first command (None: use Ray calls)."""
        async with self._line_lock:
            if self._line is None and self._line_at is not None and not self.closed:
                at, self._line_at = self._line_at, None  # tried once
                self._line = await direct.Line.open(
                    at, max_reply=direct.reply_bound(self.spec.output_cap_bytes),
                    where=f"sandbox {self.name} on node {self.node.name}")
        return self._line

    async def read_file(self, path: str, *, max_bytes: int = 10 * 1024 * 1024) -> bytes:
        data = await self._call("read_file", path, max_bytes, what=f"read of {path}")
        return bytes(data)

    async def write_file(self, path: str, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        await self._call("write_file", path, raw, what=f"write of {path}")

    async def kill_all(self) -> int:
        return int(await self._call("kill_all", what="killing the commands' processes"))

    async def put_dir(self, src: Path, dest: str = "/workspace") -> None:
        """Send `src` as a checked archive; the node extracts it and copies it in."""
        archive = await asyncio.to_thread(wire.pack, Path(src))
        await self._call("put_dir", archive, dest, what=f"put_dir into {dest}", timeout_s=None)

    async def get_dir(self, src: str, dest: Path, *, max_bytes: int | None = None,
                      max_file_bytes: int | None = None) -> None:
        """Copy out on the node (its refusals and caps), then check and extract here with the
        same refusals and caps."""
        archive = await self._call("get_dir", src, max_bytes, max_file_bytes,
                                   what=f"get_dir({src})", timeout_s=None)
        cap = min(max_file_bytes or self.spec.max_file_bytes, self.spec.max_file_bytes)
        total = self.spec.max_copy_bytes if max_bytes is None else max_bytes
        budget = files.Budget(max_file=cap, max_total=total,
                              where=f"sandbox {self.name} on node {self.node.name}: "
                                    f"get_dir({src})")
        await asyncio.to_thread(wire.unpack, wire.Archive.model_validate(archive), Path(dest),
                                budget)

    async def aclose(self) -> None:
        """Remove the container on the node; the actor may then host another sandbox."""
        if self.closed:
            return
        healthy = False
        if self._line is not None:
            await self._line.aclose()
        try:
            await self._call("close", what="closing the sandbox")
            healthy = True
        except Exception:  # a lost node took the container along, or a sweep will
            pass
        finally:
            self.closed = True
            with contextlib.suppress(Exception):
                await asyncio.shield(self._on_close(self, healthy))


def _connected() -> bool:
    import ray

    return bool(ray.is_initialized())


async def awaited(ref: Awaitable[T]) -> T:
    """An ObjectRef's value as a coroutine (what `asyncio.wait_for` and `gather` take)."""
    return await ref


def _unwrapped(err: Exception, node: wire.NodeInfo) -> Exception:
    """What the node's sandbox raised, as that exception (Ray wraps it in a RayTaskError)."""
    from ray.exceptions import RayTaskError

    cause = err.cause if isinstance(err, RayTaskError) else err
    if isinstance(cause, SandboxUnavailable):
        return SandboxUnavailable(f"on node {node.name}: {cause}")
    if isinstance(cause, Exception):
        return cause
    return SandboxUnavailable(f"on node {node.name}: {first_line(err)}")
