"""What a run may use of the machine, and its sandbox provider wrapped so that it holds to it.

The capacity comes from the engine (CPUs, memory) and the NVIDIA device list, or from the run
options for a shared machine (`--cpus`, `--memory`, `--gpu-ids`). Every sandbox of the run, work
and grading alike, is admitted under a lease; the log says once what fits, and for each sandbox
which slot and which GPU devices it got.

On a Ray cluster (`--cluster ADDRESS`) the capacity is the usable nodes' resources together
(a sandbox never spans nodes: what fits is counted per node), each lease also names the node
that holds the sandbox, and a node lost mid-subtask is logged once (`node_lost`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from labcoat.experiment import Experiment
from labcoat.log import EventBase
from labcoat.sandboxes.admission import Admission, Capacity, Lease, Need
from labcoat.sandboxes.admitted import AdmittedProvider
from labcoat.sandboxes.base import SandboxProvider, SandboxSpec

if TYPE_CHECKING:
    from labcoat.sandboxes.ray.wire import NodeInfo

Emit = Callable[..., EventBase]
"""`emit(type, **fields)`: append an event to the run's log."""
NodeOf = Callable[[SandboxSpec], str | None]
"""The node that holds the sandbox just created for a spec (None on one machine)."""


def need_of(exp: Experiment) -> Need:
    """What one sandbox of the experiment asks for."""
    res = exp.spec.resources
    return Need(cpus=res.cpus, memory_mb=res.memory_mb, gpus=res.gpus)


def detect(config: Mapping[str, Any]) -> Capacity:
    """The machine's capacity as the engine reports it, with the run options' overrides."""
    from labcoat.sandboxes.engine import connect

    client = connect()
    try:
        return Capacity.detect(client, cpus=config.get("cpus"),
                               memory_mb=config.get("memory_mb"), gpu_ids=config.get("gpu_ids"))
    finally:
        client.close()


def pool_size(capacity: Capacity, need: Need, parallel: int) -> int:
    """Warm sandboxes to keep beside the ones in use, within what fits (none for GPU ones: a
    warm container would hold devices nobody uses)."""
    if need.gpus:
        return 0
    return max(0, min(parallel, capacity.fits(need) - parallel))


def admitted(inner: SandboxProvider, capacity: Capacity, exp: Experiment, parallel: int,
             emit: Emit, node_of: NodeOf | None = None) -> AdmittedProvider:
    """`inner` under admission; records what fits (once) and each lease."""
    admission = Admission(capacity)
    need = need_of(exp)
    admission.check(need)
    fits = admission.limit(need)
    note = (f"at most {fits} sandbox(es) of {need.cpus:g} CPUs / {need.memory_mb} MB"
            + (f" / {need.gpus} GPU(s)" if need.gpus else "") + " live at once, fewer than "
            f"--parallel {parallel}") if fits < parallel else ""
    emit("capacity", cpus=capacity.cpus, memory_mb=capacity.memory_mb,
         gpu_ids=list(capacity.gpu_ids), source=capacity.source, fits=fits, parallel=parallel,
         sandbox={"cpus": need.cpus, "memory_mb": need.memory_mb, "gpus": need.gpus}, note=note)

    def leased(lease: Lease, spec: SandboxSpec) -> None:
        emit("sandbox_leased", subtask_id=subtask_of(spec), sandbox=spec.subtask_id,
             slot=lease.slot, cpus=lease.need.cpus,
             memory_mb=lease.need.memory_mb, gpu_ids=list(lease.gpu_ids),
             node=node_of(spec) if node_of is not None else None)

    return AdmittedProvider(inner, admission, on_lease=leased)


def subtask_of(spec: SandboxSpec) -> str | None:
    """The subtask a sandbox works for (`<sid>`, `<sid>-run` and `<sid>-eval` are sid's)."""
    if spec.subtask_id.endswith(("-run", "-eval")):
        return spec.subtask_id.rsplit("-", 1)[0]
    return spec.subtask_id or None


@contextlib.asynccontextmanager
async def provider(config: Mapping[str, Any], run_id: str, exp: Experiment, parallel: int,
                   emit: Emit) -> AsyncIterator[AdmittedProvider]:
    """The run's sandboxes under admission: this machine's Docker engine, or the nodes of the
    Ray cluster that `config["cluster"]` names. Every exit path removes what it made."""
    from labcoat.sandboxes.docker import DockerProvider

    need = need_of(exp)
    address = cluster_address(config)
    if address is not None:
        async with _cluster(address, run_id, exp, parallel, emit) as on_cluster:
            yield on_cluster
        return
    machine = await asyncio.to_thread(detect, config)
    async with DockerProvider(run_id=run_id, pool_size=pool_size(machine, need, parallel)) as box:
        yield admitted(box, machine, exp, parallel, emit)


def cluster_address(config: Mapping[str, Any]) -> str | None:
    """The Ray cluster a run's sandboxes live on (None: this machine's Docker engine)."""
    from labcoat.sandboxes.ray.address import normalize

    given = config.get("cluster")
    return normalize(str(given)) if given else None


@contextlib.asynccontextmanager
async def _cluster(address: str, run_id: str, exp: Experiment, parallel: int,
                   emit: Emit) -> AsyncIterator[AdmittedProvider]:
    from labcoat.orchestrator.sandboxing import image_of
    from labcoat.sandboxes.ray import RayProvider

    def lost(node: NodeInfo, spec: SandboxSpec, why: str) -> None:
        emit("node_lost", node=node.name, node_id=node.node_id, subtask_id=subtask_of(spec),
             sandbox=spec.subtask_id, reason=why)

    need = need_of(exp)
    async with RayProvider(run_id, address=address, image=image_of(exp),
                           pool_size=0 if need.gpus else 1, on_node_lost=lost) as nodes:
        cap, _ = nodes.capacity(need)
        yield admitted(nodes, cap, exp, parallel, emit, node_of=nodes.node_of)
