"""Admission: how many sandboxes may live at once, and which GPUs each one gets.

labcoat knows the capacity it may use (CPUs, memory, GPU device ids: from the engine and the
NVIDIA device list, or given by the person for a shared machine) and what each sandbox asks for
(the experiment's resources, for work and grading alike). A sandbox is created only under a
`Lease` that fits: memory, CPUs and GPUs are never oversubscribed, and each GPU belongs to one
sandbox at a time, by device id, until that sandbox is removed.

    admission = Admission(Capacity.detect(client))
    admission.check(need)            # ConfigError when it cannot fit even once
    lease = await admission.acquire(need)      # waits until it fits (first come, first served)
    ...                                        # lease.gpu_ids go to the container's device request
    admission.release(lease)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from labcoat.errors import ConfigError

if TYPE_CHECKING:
    from docker import DockerClient

    from labcoat.sandboxes.base import SandboxSpec


@dataclass(frozen=True)
class Need:
    """What one sandbox asks for."""

    cpus: float
    memory_mb: int
    gpus: int = 0

    @classmethod
    def of(cls, spec: SandboxSpec) -> Need:
        return cls(cpus=spec.cpus, memory_mb=spec.memory_mb, gpus=spec.gpus)


@dataclass(frozen=True)
class Capacity:
    """What labcoat may use on one machine."""

    cpus: float
    memory_mb: int
    gpu_ids: tuple[str, ...] = ()
    source: str = "given"
    """Where the numbers came from (`engine`, `given`, ...), for messages."""

    @classmethod
    def detect(cls, client: DockerClient, *, cpus: float | None = None,
               memory_mb: int | None = None, gpu_ids: Sequence[str] | None = None) -> Capacity:
        """The engine's CPUs and memory and this host's NVIDIA devices; arguments override."""
        info = client.info()
        found_cpus = float(info.get("NCPU") or os.cpu_count() or 1)
        found_mb = int(info.get("MemTotal") or 0) // (1024 * 1024)
        ids = tuple(gpu_ids) if gpu_ids is not None else nvidia_devices()
        given = cpus is not None or memory_mb is not None or gpu_ids is not None
        return cls(cpus=cpus or found_cpus, memory_mb=memory_mb or found_mb, gpu_ids=ids,
                   source="engine, with the person's overrides" if given else "engine")

    def fits(self, need: Need) -> int:
        """How many sandboxes of `need` fit at once (0: not even one)."""
        counts = [int(self.cpus // need.cpus) if need.cpus > 0 else 1 << 30,
                  self.memory_mb // need.memory_mb if need.memory_mb > 0 else 1 << 30]
        if need.gpus:
            counts.append(len(self.gpu_ids) // need.gpus)
        return max(0, min(counts))


def nvidia_devices() -> tuple[str, ...]:
    """NVIDIA GPU indices on this host: from `nvidia-smi`, else from /dev/nvidiaN nodes."""
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=index", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10, check=True).stdout
            return tuple(line.strip() for line in out.splitlines() if line.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    nodes = [p.name.removeprefix("nvidia") for p in Path("/dev").glob("nvidia[0-9]*")]
    return tuple(sorted((n for n in nodes if n.isdigit()), key=int))


@dataclass(frozen=True)
class Lease:
    """One admitted sandbox: its slot number, what it holds, and its GPU device ids."""

    id: int
    slot: int
    need: Need
    gpu_ids: tuple[str, ...] = ()


@dataclass
class _Waiter:
    need: Need
    ready: asyncio.Future[Lease]


@dataclass
class Admission:
    """Hands out leases within a capacity; waiters are served in arrival order."""

    capacity: Capacity
    max_sandboxes: int | None = None
    """An upper bound on live sandboxes whatever fits (None: what fits decides)."""
    _cpus: float = 0.0
    _memory_mb: int = 0
    _free_gpus: list[str] = field(default_factory=list)
    _slots: set[int] = field(default_factory=set)
    _waiters: deque[_Waiter] = field(default_factory=deque)
    _next_id: int = 0

    def __post_init__(self) -> None:
        self._free_gpus = list(self.capacity.gpu_ids)

    def check(self, need: Need) -> None:
        """Refuse, before any container exists, a sandbox that could never be admitted."""
        if self.capacity.fits(need) >= 1:
            return
        raise ConfigError(_never_fits(self.capacity, need))

    def limit(self, need: Need) -> int:
        """How many sandboxes of `need` may live at once."""
        fit = self.capacity.fits(need)
        return fit if self.max_sandboxes is None else min(fit, self.max_sandboxes)

    @property
    def live(self) -> int:
        return len(self._slots)

    def try_acquire(self, need: Need) -> Lease | None:
        """A lease now, or None when `need` does not fit now (or others wait before it)."""
        if self._waiters or not self._room(need):
            return None
        return self._grant(need)

    async def acquire(self, need: Need) -> Lease:
        """A lease as soon as `need` fits; first come, first served."""
        self.check(need)
        lease = self.try_acquire(need)
        if lease is not None:
            return lease
        waiter = _Waiter(need, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            return await waiter.ready
        except asyncio.CancelledError:
            self._withdraw(waiter)
            raise

    def release(self, lease: Lease) -> None:
        """Give a lease's resources back (idempotent) and admit whoever now fits."""
        if lease.slot not in self._slots:
            return
        self._slots.discard(lease.slot)
        self._cpus -= lease.need.cpus
        self._memory_mb -= lease.need.memory_mb
        self._free_gpus.extend(lease.gpu_ids)
        self._free_gpus.sort(key=lambda g: (len(g), g))
        self._serve()

    def _room(self, need: Need) -> bool:
        cap = self.capacity
        return (self._cpus + need.cpus <= cap.cpus + 1e-9
                and self._memory_mb + need.memory_mb <= cap.memory_mb
                and len(self._free_gpus) >= need.gpus
                and (self.max_sandboxes is None or len(self._slots) < self.max_sandboxes))

    def _grant(self, need: Need) -> Lease:
        slot = min(set(range(len(self._slots) + 1)) - self._slots)
        gpus, self._free_gpus = tuple(self._free_gpus[:need.gpus]), self._free_gpus[need.gpus:]
        self._cpus += need.cpus
        self._memory_mb += need.memory_mb
        self._slots.add(slot)
        self._next_id += 1
        return Lease(self._next_id, slot, need, gpus)

    def _serve(self) -> None:
        while self._waiters and self._room(self._waiters[0].need):
            waiter = self._waiters.popleft()
            if not waiter.ready.done():
                waiter.ready.set_result(self._grant(waiter.need))

    def _withdraw(self, waiter: _Waiter) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        elif waiter.ready.done() and not waiter.ready.cancelled():
            self.release(waiter.ready.result())  # granted just as the caller gave up
        self._serve()


def _never_fits(cap: Capacity, need: Need) -> str:
    reasons = []
    if need.memory_mb > cap.memory_mb:
        reasons.append(f"{need.memory_mb} MB of memory per sandbox, but labcoat may use "
                       f"{cap.memory_mb} MB")
    if need.cpus > cap.cpus:
        reasons.append(f"{need.cpus:g} CPUs per sandbox, but labcoat may use {cap.cpus:g}")
    if need.gpus > len(cap.gpu_ids):
        reasons.append(f"{need.gpus} GPU(s) per sandbox, but this machine offers "
                       f"{len(cap.gpu_ids)} ({', '.join(cap.gpu_ids) or 'none'})")
    return ("the experiment's resources cannot fit even one sandbox: "
            + "; ".join(reasons) + f" (capacity from the {cap.source}). fix: lower "
            "`resources` in experiment.yaml, or tell labcoat what it may use with "
            "`--cpus`, `--memory`, `--gpu-ids`")
