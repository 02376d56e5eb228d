"""What a run may use of the machine, and its sandbox provider wrapped so that it holds to it.

The capacity comes from the engine (CPUs, memory) and the NVIDIA device list, or from the run
options for a shared machine (`--cpus`, `--memory`, `--gpu-ids`). Every sandbox of the run, work
and grading alike, is admitted under a lease; the log says once what fits, and for each sandbox
which slot and which GPU devices it got.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from labcoat.experiment import Experiment
from labcoat.log import EventBase
from labcoat.sandboxes.admission import Admission, Capacity, Lease, Need
from labcoat.sandboxes.admitted import AdmittedProvider
from labcoat.sandboxes.base import SandboxProvider, SandboxSpec

Emit = Callable[..., EventBase]
"""`emit(type, **fields)`: append an event to the run's log."""


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
             emit: Emit) -> AdmittedProvider:
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
        emit("sandbox_leased", subtask_id=spec.subtask_id.rsplit("-", 1)[0]
             if spec.subtask_id.endswith(("-run", "-eval")) else spec.subtask_id or None,
             sandbox=spec.subtask_id, slot=lease.slot, cpus=lease.need.cpus,
             memory_mb=lease.need.memory_mb, gpu_ids=list(lease.gpu_ids))

    return AdmittedProvider(inner, admission, on_lease=leased)
