"""The cluster's nodes as labcoat sees them: which may hold sandboxes, what fits, what was lost.

A node offers sandboxes by advertising the Ray custom resource `labcoat_sandbox` (how many it
may hold at once). Before a node is given any, a small task pinned to it (`check_node`) asks
its Docker engine whether it answers, whether the image is there and which labcoat it runs,
and removes what an earlier labcoat process left on it (a run's containers, orphans). A node
that fails the check is left out of placement (`Nodes.selector`), with the reason kept for
messages and `labcoat doctor --cluster`.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from labcoat.errors import SandboxUnavailable, first_line
from labcoat.sandboxes.admission import Capacity, Need
from labcoat.sandboxes.base import SandboxSpec
from labcoat.sandboxes.ray.wire import NodeInfo

if TYPE_CHECKING:
    from docker import DockerClient

RESOURCE = "labcoat_sandbox"
"""The custom resource a node advertises to offer sandboxes:
`ray start ... --resources '{"labcoat_sandbox": 4}'`."""
NODE_ID_LABEL = "ray.io/node-id"
MB = 1024 * 1024

OnNodeLost = Callable[[NodeInfo, SandboxSpec, str], None]
"""Told once per lost node: the node, the sandbox that was on it, why it counts as lost."""


class NodeReport(BaseModel):
    """What `check_node` found on one node, plus its resources as Ray knows them."""

    model_config = ConfigDict(extra="forbid")

    node: NodeInfo
    labcoat_version: str
    docker_version: str = ""
    engine_error: str | None = None
    """Why the node's Docker engine did not answer (None: it did)."""
    image: str = ""
    image_present: bool | None = None
    """Whether `image` is on the node's engine (None: not asked)."""
    removed: int = 0
    """Leftover labcoat containers the check removed."""
    total: dict[str, float] = Field(default_factory=dict)
    free: dict[str, float] = Field(default_factory=dict)

    def problem(self, version: str) -> str | None:
        """Why this node may not hold sandboxes (None: it may)."""
        if self.engine_error:
            return f"its Docker engine does not answer ({self.engine_error})"
        if self.labcoat_version != version:
            return (f"it runs labcoat {self.labcoat_version}, this machine {version}; fix: "
                    "install the same labcoat on every node (`pip install 'labcoat[ray]==...'`)")
        if self.image_present is False:
            return (f"the image {self.image} is not on its engine; fix: `labcoat doctor "
                    "--cluster ADDRESS` builds labcoat's image there (or `docker pull`/`load` it)")
        return None


# ---- on a node ---------------------------------------------------------------------------------


def check_node(image: str | None, run_id: str | None, sweep: bool) -> NodeReport:
    """(Runs on the node.) Engine up? Image there? Remove the run's leftovers and orphans."""
    import labcoat
    from labcoat.sandboxes.engine import connect
    from labcoat.sandboxes.ray.host import this_node

    base: dict[str, Any] = {"node": this_node(), "labcoat_version": labcoat.__version__,
                            "image": image or ""}
    try:
        client = connect(5.0)
    except SandboxUnavailable as err:
        return NodeReport(**base, engine_error=first_line(err, 300))
    try:
        return NodeReport(**base, **_inspect(client, image, run_id, sweep))
    finally:
        client.close()


def _inspect(client: DockerClient, image: str | None, run_id: str | None, sweep: bool,
             ) -> dict[str, Any]:
    from labcoat.sandboxes.cleanup import remove_run, sweep_orphans
    from labcoat.sandboxes.image import image_exists

    removed = remove_run(client, run_id) if run_id else 0
    if sweep:
        removed += sweep_orphans(client)
    found: dict[str, Any] = {"docker_version": str(client.version().get("Version", "?")),
                             "removed": removed}
    if image:
        found["image_present"] = image_exists(client, image)
    return found


def sweep_node(run_id: str | None) -> int:
    """(Runs on the node.) Remove a run's containers, or every orphan; how many."""
    from labcoat.sandboxes.cleanup import remove_run, sweep_orphans
    from labcoat.sandboxes.engine import connect

    client = connect(5.0)
    try:
        return remove_run(client, run_id) if run_id else sweep_orphans(client)
    finally:
        client.close()


def build_on_node(force: bool) -> str:
    """(Runs on the node.) Build labcoat's image on the node's engine; the tag."""
    from labcoat.sandboxes.image import build_image

    return build_image(force=force, say=lambda _: None)


# ---- from labcoat's side -----------------------------------------------------------------------


@functools.cache
def _remote(fn: Callable[..., Any]) -> Any:
    import ray

    return ray.remote(num_cpus=0, max_retries=0)(fn)


def on_node(fn: Callable[..., Any], node_id: str, *args: Any) -> Any:
    """Run `fn(*args)` on the node `node_id` (and nowhere else); an ObjectRef."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    where = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
    return _remote(fn).options(scheduling_strategy=where).remote(*args)


def sandbox_nodes() -> list[dict[str, Any]]:
    """Ray's entries of the live nodes that advertise `labcoat_sandbox`."""
    import ray

    return [n for n in ray.nodes() if n.get("Alive") and n["Resources"].get(RESOURCE, 0) > 0]


def free_resources() -> dict[str, dict[str, float]]:
    """What each node has free now, by node id (empty when Ray cannot say, e.g. via ray://)."""
    try:
        from ray._private.state import available_resources_per_node

        return dict(available_resources_per_node())
    except Exception:  # a Ray Client connection has no state API
        return {}


def death_window_s() -> float:
    """How long Ray's health checks may take to declare a dead node dead (its
    `RAY_health_check_*` settings, Ray's defaults otherwise: 3 s x 5 checks + a 10 s timeout),
    with half again as margin."""
    def number(name: str, default: float) -> float:
        try:
            value = float(os.environ.get(f"RAY_health_check_{name}", default))
        except ValueError:
            return default
        return value if value > 0 else default

    period, timeout = number("period_ms", 3000) / 1000, number("timeout_ms", 10000) / 1000
    return 1.5 * (period * number("failure_threshold", 5) + timeout) + 2.0


def node_gone(node_id: str, within_s: float) -> bool:
    """Whether the node is gone: Ray declares it dead, or its raylet refuses connections, within
    `within_s`. An actor's death is seen at once, its node's only when Ray's health checks
    decide, so asking Ray once right away would take a killed node for a lost actor."""
    deadline = time.monotonic() + within_s
    while True:
        entry = _entry(node_id)
        if entry is None or not entry.get("Alive") or _refuses(entry):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)


def _entry(node_id: str) -> dict[str, Any] | None:
    import ray

    return next((n for n in ray.nodes() if n["NodeID"] == node_id), None)


def _refuses(entry: dict[str, Any]) -> bool:
    """Whether the node's raylet refuses a TCP connection (a timeout decides nothing: the
    network may be slow or filtered)."""
    address, port = entry.get("NodeManagerAddress"), entry.get("NodeManagerPort")
    if not address or not port:
        return False
    try:
        socket.create_connection((str(address), int(port)), timeout=1.0).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        pass
    return False


async def check_all(image: str | None, run_id: str | None, sweep: bool,
                    only: Iterable[str] | None = None) -> list[NodeReport]:
    """Check every sandbox node (or those in `only`) at once."""
    entries = await asyncio.to_thread(sandbox_nodes)
    wanted = set(only) if only is not None else None
    entries = [n for n in entries if wanted is None or n["NodeID"] in wanted]
    refs = [on_node(check_node, n["NodeID"], image, run_id, sweep) for n in entries]
    found = await asyncio.gather(*(_settled(r) for r in refs))
    free = await asyncio.to_thread(free_resources)
    reports = []
    for entry, report in zip(entries, found, strict=True):
        if report is None:
            continue  # the node went away while it was checked
        reports.append(report.model_copy(update={"total": dict(entry["Resources"]),
                                                 "free": free.get(entry["NodeID"], {})}))
    return reports


async def _settled(ref: Awaitable[object]) -> NodeReport | None:
    try:
        return NodeReport.model_validate(await ref)
    except Exception:
        return None


def node_fits(total: dict[str, float], need: Need) -> int:
    """How many sandboxes of `need` one node's resources hold at once."""
    counts = [int(total.get(RESOURCE, 0))]
    if need.cpus > 0:
        counts.append(int(total.get("CPU", 0) / need.cpus + 1e-9))
    if need.memory_mb > 0 and "memory" in total:
        counts.append(int(total["memory"] // (need.memory_mb * MB)))
    if need.gpus:
        counts.append(int(total.get("GPU", 0) // need.gpus))
    return max(0, min(counts))


class Nodes:
    """The nodes a provider may place sandboxes on, and those it lost."""

    def __init__(self, version: str, on_lost: OnNodeLost | None = None) -> None:
        self.version, self.on_lost = version, on_lost
        self.reports: dict[str, NodeReport] = {}
        self.refused: dict[str, str] = {}
        """Node id -> why it may not hold sandboxes."""
        self.lost_ids: set[str] = set()

    def add(self, reports: Iterable[NodeReport]) -> None:
        for report in reports:
            node_id = report.node.node_id
            self.reports[node_id] = report
            problem = report.problem(self.version)
            if problem is None:
                self.refused.pop(node_id, None)
            elif node_id not in self.lost_ids:
                self.refused[node_id] = problem

    def usable(self) -> list[NodeReport]:
        return [r for i, r in self.reports.items()
                if i not in self.refused and i not in self.lost_ids]

    def selector(self) -> dict[str, str]:
        """A Ray label selector naming the usable nodes."""
        ids = sorted(r.node.node_id for r in self.usable())
        return {NODE_ID_LABEL: f"in({','.join(ids)})"}

    def refuse(self, node_id: str, why: str) -> None:
        self.refused[node_id] = why

    def describe(self) -> str:
        """The nodes and why each that may not hold sandboxes may not, for messages."""
        parts = [f"{r.node.name}: " + (self.refused.get(i) or
                                      ("lost" if i in self.lost_ids else "ok"))
                 for i, r in self.reports.items()]
        return "; ".join(parts) or "no node advertises the `labcoat_sandbox` resource"

    def require(self, need: Need) -> None:
        """`SandboxUnavailable` unless some usable node can ever hold a sandbox of `need`."""
        if any(node_fits(r.total, need) >= 1 for r in self.usable()):
            return
        raise SandboxUnavailable(
            f"no node of the Ray cluster can hold a sandbox of {need.cpus:g} CPUs / "
            f"{need.memory_mb} MB / {need.gpus} GPU(s) ({self.describe()}); fix: start a node "
            f"with `ray start --address HEAD:PORT --resources '{{\"{RESOURCE}\": 4}}'` and "
            "Docker with labcoat's image, or lower `resources` in experiment.yaml")

    def capacity(self, need: Need, where: str) -> tuple[Capacity, int]:
        """The usable nodes' resources together, and how many sandboxes of `need` fit at once
        (per node, then summed: a sandbox never spans nodes)."""
        usable = self.usable()
        gpus = tuple(f"{r.node.name}/{i}" for r in usable
                     for i in range(int(r.total.get("GPU", 0))))
        cap = Capacity(cpus=sum(r.total.get("CPU", 0.0) for r in usable),
                       memory_mb=int(sum(r.total.get("memory", 0.0) for r in usable) // MB),
                       gpu_ids=gpus, source=f"Ray cluster {where}, {len(usable)} node(s)")
        return cap, sum(node_fits(r.total, need) for r in usable)

    async def lost(self, node: NodeInfo, spec: SandboxSpec, err: BaseException) -> str:
        """Whether `node` is gone (reported once through `on_lost`), in words."""
        text = str(err)
        dead = ("node has died" in text or node.node_id in self.lost_ids
                or await asyncio.to_thread(node_gone, node.node_id, death_window_s()))
        if not dead:
            return f"its actor on node {node.name} died ({first_line(err)})"
        why = f"node {node.name} was lost (its Ray processes stopped answering)"
        if node.node_id not in self.lost_ids:
            self.lost_ids.add(node.node_id)
            if self.on_lost is not None:
                self.on_lost(node, spec, why)
        return why
