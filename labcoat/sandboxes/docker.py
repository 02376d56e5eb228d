"""The Docker backend: hardened containers driven through a persistent exec channel.

Usage (the research loop does this)::

    async with DockerProvider(run_id="r1", pool_size=parallel) as provider:
        async with await provider.create(spec) as box:      # from the warm pool when it has one
            await box.put_dir(worktree, "/workspace")
            result = await box.exec("python train.py", timeout_s=600)
            await box.get_dir("/workspace", worktree_out)

`DockerProvider(run_id=None, *, client=None, pool_size=0, scratch_root=None, exec_channel=True,
node=None)`:

* `run_id`: the run whose containers `aclose()` removes (all containers this provider made are
  removed in any case);
* `client`: a docker SDK client (default: `engine.connect()`, which fails within 5 s with the fix);
* `pool_size`: warm containers kept ready per (image, limits) key; use the run's `parallel`;
* `scratch_root`: host folder for the bind-mounted `/workspace` and `/outputs` (default: the temp
  dir, or `$LABCOAT_SCRATCH_DIR`);
* `exec_channel`: False forces the one-exec-per-command fallback (for comparison and tests);
* `node`: on a Ray cluster node, its name: container names and the `labcoat.node` label carry it.

Entering the provider sweeps orphans (labcoat containers on this host whose process is gone) and,
when the application has not claimed SIGTERM, turns SIGTERM into a cancellation so that the
`async with` exit removes every container; SIGKILL leaves them to the next start's sweep.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import signal
import threading
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from docker import DockerClient

from labcoat.errors import SandboxUnavailable
from labcoat.sandboxes import _container as ctr
from labcoat.sandboxes._sandbox import DockerSandbox, max_blob
from labcoat.sandboxes.base import SandboxSpec
from labcoat.sandboxes.channel import Channel, ChannelClosed
from labcoat.sandboxes.cleanup import remove_run, sweep_orphans
from labcoat.sandboxes.engine import connect
from labcoat.sandboxes.pool import WarmPool

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["DockerProvider", "DockerSandbox"]


class DockerProvider:
    """Creates hardened Docker sandboxes; removes them on every exit path. Use as `async with`."""

    def __init__(self, run_id: str | None = None, *, client: DockerClient | None = None,
                 pool_size: int = 0, scratch_root: Path | None = None,
                 exec_channel: bool = True, node: str | None = None) -> None:
        self.run_id, self._client = run_id, client
        self.node = node
        """The cluster node this provider runs on (named in its containers); None: one machine."""
        self.scratch_root = scratch_root or ctr.scratch_root()
        self.exec_channel = exec_channel
        self.pool = WarmPool(self._create_pooled, self.create_cold, pool_size) \
            if pool_size > 0 else None
        self._live: dict[str, DockerSandbox | None] = {}
        self._started = False
        self._preflighted: set[tuple[str, int]] = set()
        self._sigterm: asyncio.AbstractEventLoop | None = None
        self._own_client = False
        """True when `start` connected (and so `aclose` closes the client)."""

    async def __aenter__(self) -> DockerProvider:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Connect (within 5 s or `SandboxUnavailable`), sweep orphans, guard SIGTERM."""
        if self._started:
            return
        if self._client is None:
            self._client = await asyncio.to_thread(connect, 5.0)
            self._own_client = True
        removed = await asyncio.to_thread(sweep_orphans, self.client, self.scratch_root)
        if removed:
            log.info("removed %d orphaned labcoat container(s)", removed)
        self._started = True
        atexit.register(self._remove_sync)
        self._guard_sigterm()

    def _guard_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return  # the application handles SIGTERM itself
        task, loop = asyncio.current_task(), asyncio.get_running_loop()
        if task is not None:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
            self._sigterm = loop

    async def preflight(self, spec: SandboxSpec) -> None:
        """Fail before any container exists: unsafe settings, missing image, GPUs not there."""
        await self.start()
        ctr.check_spec(spec)
        key = (spec.image, spec.gpus)
        if key not in self._preflighted:  # once per image: acquisitions stay sub-millisecond
            await asyncio.to_thread(ctr.preflight, self.client, spec)
            self._preflighted.add(key)

    async def create(self, spec: SandboxSpec) -> DockerSandbox:
        """A started sandbox for `spec`: from the warm pool when enabled, else created cold."""
        if self.pool is not None:
            await self.preflight(spec)
            return await self.pool.acquire(spec)
        return await self.create_cold(spec)

    async def warm(self, spec: SandboxSpec, count: int | None = None) -> None:
        """Pre-start pool containers for `spec`'s key and wait until they are ready."""
        if self.pool is None:
            raise ValueError("warm() needs a pool: DockerProvider(pool_size=N)")
        await self.preflight(spec)
        await self.pool.warm(spec, count)

    async def create_cold(self, spec: SandboxSpec, *, pooled: bool = False) -> DockerSandbox:
        """Create, start and connect one container (about 0.4 s)."""
        await self.preflight(spec)
        name = ctr.container_name(spec, pooled=pooled, node=self.node)
        scratch = ctr.process_dir(self.scratch_root) / name
        self._live[name] = None
        try:
            await _finished(asyncio.to_thread(ctr.make_scratch, self.scratch_root, name,
                                              spec.writable_dirs, spec.disk_mb))
            box = await self._boot(spec, name, scratch, pooled)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(self._discard, name, scratch))
            raise
        self._live[name] = box
        return box

    async def _boot(self, spec: SandboxSpec, name: str, scratch: Path, pooled: bool,
                    ) -> DockerSandbox:
        kwargs = ctr.create_kwargs(self.client.api, spec, name, scratch, pooled=pooled,
                                   node=self.node)

        def create_and_start() -> str:
            cid = self.client.api.create_container(**kwargs)["Id"]
            self.client.api.start(cid)
            return str(cid)

        work = asyncio.ensure_future(asyncio.to_thread(create_and_start))
        try:
            cid = await asyncio.shield(work)
        except asyncio.CancelledError:
            # A thread cannot be stopped: let it finish so that the discard that follows finds
            # (and removes) the container, instead of racing ahead of its creation.
            with contextlib.suppress(BaseException):
                await work
            raise
        except Exception as err:
            raise _engine_error(f"creating sandbox {name}", err) from None
        channel = await self._channel(cid, name, spec) if self.exec_channel else None
        return DockerSandbox(self.client, cid, name, spec, scratch, channel,
                             on_close=self._forget, use_channel=self.exec_channel)

    async def _channel(self, cid: str, name: str, spec: SandboxSpec) -> Channel | None:
        try:
            return await Channel.start(self.client, cid, max_blob=max_blob(spec))
        except ChannelClosed as err:
            log.warning("sandbox %s: no exec agent (%s); using one engine exec per command",
                        name, err)
            return None

    async def _create_pooled(self, spec: SandboxSpec) -> DockerSandbox:
        return await self.create_cold(spec, pooled=True)

    def _forget(self, name: str) -> None:
        self._live.pop(name, None)

    def _discard(self, name: str, scratch: Path) -> None:
        with contextlib.suppress(Exception):
            self.client.api.remove_container(name, force=True, v=True)
        ctr.remove_scratch(scratch, self.scratch_root)
        self._forget(name)

    async def cleanup(self, run_id: str | None = None) -> int:
        """Remove `run_id`'s containers (any process's), or with None every orphan's; how many."""
        await self.start()
        if run_id is None:
            return await asyncio.to_thread(sweep_orphans, self.client, self.scratch_root)
        return await asyncio.to_thread(remove_run, self.client, run_id, self.scratch_root)

    async def aclose(self) -> None:
        """Remove every container this provider made (pool included) and the run's leftovers."""
        if self.pool is not None:
            await self.pool.aclose()
        boxes = [b for b in self._live.values() if b is not None]
        await asyncio.gather(*(b.aclose() for b in boxes), return_exceptions=True)
        if self._started and self.run_id:
            with contextlib.suppress(Exception):
                await self.cleanup(self.run_id)
        self._remove_sync()
        self._unguard()
        if self._own_client and self._client is not None:
            self._client.close()
            self._client, self._own_client, self._started = None, False, False

    @property
    def client(self) -> DockerClient:
        """The engine client (connected by `start`)."""
        if self._client is None:
            raise SandboxUnavailable("the Docker provider is not started; use `async with "
                                     "DockerProvider(...)` or `await provider.start()`")
        return self._client

    def _unguard(self) -> None:
        atexit.unregister(self._remove_sync)
        if self._sigterm is not None:
            with contextlib.suppress(Exception):
                self._sigterm.remove_signal_handler(signal.SIGTERM)
            self._sigterm = None

    def _remove_sync(self) -> None:
        """Last resort (atexit, or after aclose): force-remove whatever is still tracked."""
        for name in list(self._live):
            box = self._live.get(name)
            self._discard(name, box.scratch if box else ctr.process_dir(self.scratch_root) / name)


async def _finished(work: Awaitable[T]) -> T:
    """Await work running in a thread; on cancellation, let it finish first (a thread cannot be
    stopped), so that the clean-up that follows finds what it made (a mount, a container)."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await task
        raise


def _engine_error(what: str, err: BaseException) -> SandboxUnavailable:
    text = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
    return SandboxUnavailable(f"{what} failed: {text}; check the engine with `docker info`")
