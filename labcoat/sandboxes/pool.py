"""The warm pool: containers started ahead of need, each used once and then force-removed.

Pool containers are keyed by everything fixed at creation (image, limits, mounts, network, run);
what varies per subtask (`subtask_id`, `env`, `workdir`) is applied when one is handed out, since
labcoat passes the environment with each command rather than baking it into the container. A
handed-out sandbox never returns to the pool, so no state leaks from one subtask to the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from labcoat.sandboxes.base import SandboxSpec

if TYPE_CHECKING:
    from labcoat.sandboxes._sandbox import DockerSandbox

log = logging.getLogger(__name__)

Factory = Callable[[SandboxSpec], Awaitable["DockerSandbox"]]
PER_SUBTASK = frozenset({"subtask_id", "env", "workdir"})


def pool_key(spec: SandboxSpec) -> str:
    """Specs with equal keys can share pre-started containers."""
    return spec.model_dump_json(exclude=set(PER_SUBTASK))


class WarmPool:
    """Keeps up to `size` started sandboxes ready per key; size it from the run's `parallel`."""

    def __init__(self, make_warm: Factory, make_cold: Factory, size: int) -> None:
        self.make_warm, self.make_cold, self.size = make_warm, make_cold, size
        self._ready: dict[str, list[DockerSandbox]] = defaultdict(list)
        self._filling: dict[str, set[asyncio.Task[None]]] = defaultdict(set)
        self.closed = False

    def ready(self, spec: SandboxSpec) -> int:
        return len(self._ready[pool_key(spec)])

    async def acquire(self, spec: SandboxSpec) -> DockerSandbox:
        """A ready sandbox for `spec` (created cold on a miss); the pool refills behind it."""
        key = pool_key(spec)
        ready = self._ready[key]
        box = ready.pop(0) if ready else None
        self._refill(key, spec)
        if box is None:
            return await self.make_cold(spec)
        box.spec = spec
        return box

    async def warm(self, spec: SandboxSpec, count: int | None = None) -> None:
        """Start containers for `spec`'s key until `count` (default: size) are ready."""
        key = pool_key(spec)
        self._refill(key, spec, count)
        while self._filling[key]:
            await asyncio.gather(*list(self._filling[key]), return_exceptions=True)

    def _refill(self, key: str, spec: SandboxSpec, count: int | None = None) -> None:
        want = max(self.size, count or 0)
        missing = want - len(self._ready[key]) - len(self._filling[key])
        for _ in range(max(0, missing) if not self.closed else 0):
            task = asyncio.get_running_loop().create_task(self._fill_one(key, spec))
            self._filling[key].add(task)
            task.add_done_callback(self._filling[key].discard)

    async def _fill_one(self, key: str, spec: SandboxSpec) -> None:
        try:
            box = await self.make_warm(spec)
        except Exception as err:  # the next acquire creates cold and reports the real error
            log.warning("warm pool: could not pre-start a sandbox: %s", err)
            return
        if self.closed:
            await box.aclose()
        else:
            self._ready[key].append(box)

    async def aclose(self) -> None:
        """Stop refilling and force-remove every ready container."""
        self.closed = True
        tasks = [t for group in self._filling.values() for t in group]
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        boxes = [b for group in self._ready.values() for b in group]
        self._ready.clear()
        await asyncio.gather(*(b.aclose() for b in boxes), return_exceptions=True)
