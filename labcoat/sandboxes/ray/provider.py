"""`RayProvider`: sandboxes on the nodes of a Ray cluster, behind the `SandboxProvider` protocol.

    async with RayProvider(run_id="r1", address="ray://head:10001") as provider:
        async with await provider.create(spec) as box:     # an actor on a node that fits spec
            await box.put_dir(worktree, "/workspace")     # travels as a checked archive
            result = await box.exec("python train.py", timeout_s=600)

Each sandbox is a Ray actor (`host.SandboxHost`) that asks Ray for `labcoat_sandbox: 1` and
the spec's CPUs, memory and GPUs, so Ray's scheduler places it on a node with room, and only on
nodes that passed labcoat's check (Docker up, image there, same labcoat). The actor drives that
node's Docker engine with labcoat's Docker backend. Only sandbox operations cross the network:
the log, the git workspace, the models and their API keys stay in this process.

A closed sandbox's actor is kept for the next sandbox of the same shape: its container is gone,
but its process (seconds to start) is not. An idle actor still holds its node's resources, so it
is ended after `idle_s` seconds unused, and idle actors of another shape end before a new actor
is placed: idle actors never keep a sandbox waiting for long.

Starting the provider joins the cluster, checks every node and removes what an earlier process
left there (the run's containers, orphans: a head killed with SIGKILL resumes clean); closing it
removes every sandbox and actor it made and the run's containers on every node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import labcoat
from labcoat.errors import SandboxUnavailable
from labcoat.sandboxes.admission import Capacity, Need
from labcoat.sandboxes.base import SandboxSpec
from labcoat.sandboxes.ray import address as addr
from labcoat.sandboxes.ray import nodes as nd
from labcoat.sandboxes.ray import wire
from labcoat.sandboxes.ray.sandbox import RaySandbox, awaited, infrastructure_errors

if TYPE_CHECKING:
    from ray.actor import ActorHandle

log = logging.getLogger(__name__)

Shape = tuple[float, int, int]
"""What an actor holds: CPUs, memory MB, GPUs. An idle actor hosts only sandboxes of its shape."""
IDLE_S = 10.0
"""How long a closed sandbox's actor waits for the next sandbox before it is ended."""
OPEN_TIMEOUT_S = 900.0
"""How long placing an actor and starting its container may take (pulling workers and images
on a busy cluster is slow; a placement that never happens is a cluster without room)."""


class RayProvider:
    """Creates sandboxes on a Ray cluster's nodes; removes them on every exit path."""

    def __init__(self, run_id: str | None = None, *, address: str = "auto",
                 image: str | None = None, pool_size: int = 0, idle_s: float = IDLE_S,
                 on_node_lost: nd.OnNodeLost | None = None, direct_line: bool = True) -> None:
        self.run_id, self.address, self.image, self.idle_s = run_id, address, image, idle_s
        self.direct_line = direct_line
        """Send commands on each sandbox's direct line (`direct.py`); False: as Ray calls."""
        self.warm = pool_size > 0
        """Idle actors keep a container of their shape started (like the local warm pool)."""
        self.nodes = nd.Nodes(labcoat.__version__, on_node_lost)
        self._idle: dict[Shape, list[ActorHandle]] = defaultdict(list)
        self._expiry: dict[int, asyncio.TimerHandle] = {}
        self._live: set[RaySandbox] = set()
        self._ending: set[asyncio.Future[None]] = set()
        self._placed: dict[str, str] = {}
        """The node of the last sandbox created for each spec's `subtask_id`."""
        self._started = self._joined = self.closed = False

    async def __aenter__(self) -> RayProvider:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Join the cluster; check every node, removing the run's leftovers and orphans."""
        if self._started:
            return
        self._joined = addr.connect(self.address)  # in this thread: Ray binds to it
        self.nodes.add(await nd.check_all(self.image, self.run_id, sweep=True))
        removed = sum(r.removed for r in self.nodes.reports.values())
        if removed:
            log.info("removed %d leftover labcoat container(s) on the cluster's nodes", removed)
        self._started = True

    def capacity(self, need: Need) -> tuple[Capacity, int]:
        """The usable nodes together, and how many sandboxes of `need` fit at once."""
        self.nodes.require(need)
        return self.nodes.capacity(need, self.address)

    async def create(self, spec: SandboxSpec) -> RaySandbox:
        """A started sandbox for `spec` on a node Ray chooses (an idle actor's when one fits)."""
        await self.start()
        if self.closed:
            raise SandboxUnavailable("the Ray provider is closed")
        self.nodes.require(Need.of(spec))
        mounts = [await asyncio.to_thread(wire.pack, m.source) for m in spec.mounts]
        found = await self._reuse(spec, mounts)
        if found is None:
            actor = await self._place(spec)
            try:
                found = actor, await self._open(actor, spec, mounts)
            except BaseException:
                await asyncio.shield(self._end(actor))
                raise
        opened = wire.Opened.model_validate(found[1])
        if not self.direct_line:
            opened = opened.model_copy(update={"line": None})
        box = RaySandbox(found[0], opened, spec, self.nodes, self._closed)
        self._live.add(box)
        self._placed[spec.subtask_id] = box.node.name
        return box

    def node_of(self, spec: SandboxSpec) -> str | None:
        """The node that holds the sandbox last created for `spec` (for the run's log)."""
        return self._placed.get(spec.subtask_id)

    async def _reuse(self, spec: SandboxSpec, mounts: list[wire.Archive],
                     ) -> tuple[ActorHandle, Any] | None:
        """An idle actor of the spec's shape with the sandbox opened; None when there is none
        (an idle actor whose node went away is ended and the next one tried)."""
        idle = self._idle.get(_shape(spec))
        while idle:
            actor = idle.pop()
            self._expiry.pop(id(actor)).cancel()
            try:
                return actor, await self._open(actor, spec, mounts)
            except SandboxUnavailable:
                await asyncio.shield(self._end(actor))
        return None

    async def _place(self, spec: SandboxSpec) -> ActorHandle:
        """A new actor asking Ray for the spec's resources on a usable node. Idle actors of
        another shape end first: they must not hold what it waits for."""
        import ray

        from labcoat.sandboxes.ray.host import SandboxHost

        for shape in [s for s in self._idle if s != _shape(spec)]:
            await asyncio.gather(*(self._end(a) for a in self._take_idle(shape)))
        options: dict[str, Any] = {
            "num_cpus": spec.cpus, "memory": spec.memory_mb * nd.MB, "num_gpus": spec.gpus,
            "resources": {nd.RESOURCE: 1}, "max_restarts": 0, "max_task_retries": 0,
            "label_selector": self.nodes.selector(),
            # Spread over the nodes: a run's subtasks are independent, so one per node first
            # is what scales (Ray's default packs onto the first node with room).
            "scheduling_strategy": "SPREAD"}
        actor: Any = ray.remote(SandboxHost).options(**options).remote(self.warm)
        return actor  # type: ignore[no-any-return]

    async def _open(self, actor: ActorHandle, spec: SandboxSpec,
                    mounts: list[wire.Archive]) -> Any:
        ref: Any = actor.open.remote(spec.model_dump(mode="json"), mounts)
        try:
            return await asyncio.wait_for(awaited(ref), OPEN_TIMEOUT_S)
        except infrastructure_errors() as err:
            raise SandboxUnavailable(f"a sandbox could not be placed on the Ray cluster at "
                                     f"{self.address}: {err}") from None
        except Exception as err:
            raise await self._refused(actor, err) from None

    async def _refused(self, actor: ActorHandle, err: Exception) -> Exception:
        """A node whose engine failed the sandbox is given no more sandboxes."""
        from ray.exceptions import RayTaskError

        cause = err.cause if isinstance(err, RayTaskError) else err
        if not isinstance(cause, SandboxUnavailable):
            return cause if isinstance(cause, Exception) else err
        with contextlib.suppress(Exception):
            info = wire.NodeInfo.model_validate(await actor.info.remote())
            self.nodes.refuse(info.node_id, f"it failed a sandbox: {cause}")
            return SandboxUnavailable(f"on node {info.name}: {cause}")
        return cause

    async def _closed(self, box: RaySandbox, healthy: bool) -> None:
        """A sandbox closed: keep its actor for the next one of its shape, or end it."""
        self._live.discard(box)
        usable = {r.node.node_id for r in self.nodes.usable()}
        if healthy and not self.closed and box.node.node_id in usable:
            self._idle[_shape(box.spec)].append(box.actor)
            self._expiry[id(box.actor)] = asyncio.get_running_loop().call_later(
                self.idle_s, self._expire, _shape(box.spec), box.actor)
        else:
            await self._end(box.actor)

    def _expire(self, shape: Shape, actor: ActorHandle) -> None:
        idle = self._idle.get(shape, [])
        if actor in idle:
            idle.remove(actor)
            self._expiry.pop(id(actor), None)
            task = asyncio.ensure_future(self._end(actor))
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    def _take_idle(self, shape: Shape) -> list[ActorHandle]:
        actors = self._idle.pop(shape, [])
        for actor in actors:
            self._expiry.pop(id(actor)).cancel()
        return actors

    async def _end(self, actor: ActorHandle) -> None:
        """Have the actor remove what it made, then end it (a dead one is simply dropped)."""
        import ray

        if not ray.is_initialized():
            return  # the connection went (and the actors with it)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(awaited(actor.shutdown.remote()), 60.0)
        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)

    async def cleanup(self, run_id: str | None = None) -> int:
        """Remove `run_id`'s containers on every node (with None every node's orphans)."""
        await self.start()
        refs = [nd.on_node(nd.sweep_node, n["NodeID"], run_id)
                for n in await asyncio.to_thread(nd.sandbox_nodes)]
        counts = await asyncio.gather(*(awaited(r) for r in refs), return_exceptions=True)
        return sum(c for c in counts if isinstance(c, int))

    async def aclose(self) -> None:
        """Remove every sandbox and actor this provider made and the run's containers; leave
        the cluster if this provider joined it."""
        if self.closed:
            return
        self.closed = True
        await asyncio.gather(*(b.aclose() for b in list(self._live)), return_exceptions=True)
        idle = [a for shape in list(self._idle) for a in self._take_idle(shape)]
        await asyncio.gather(*(self._end(a) for a in idle), *self._ending,
                             return_exceptions=True)
        if self._started and self.run_id:
            with contextlib.suppress(Exception):
                await self.cleanup(self.run_id)
        if self._joined:
            addr.disconnect()


def _shape(spec: SandboxSpec) -> Shape:
    return (spec.cpus, spec.memory_mb, spec.gpus)


