"""A provider whose sandboxes exist only under an admission lease (`labcoat.sandboxes.admission`).

    provider = AdmittedProvider(DockerProvider(...), admission, on_lease=record)
    box = await provider.create(spec)   # waits for room; the spec gets the lease's GPU ids
    await box.aclose()                  # removes the sandbox and gives the lease back

Wraps any `SandboxProvider` (Docker here, Ray nodes on a cluster), so every sandbox of a run,
work and grading alike, counts against the same capacity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Self

from labcoat.sandboxes.admission import Admission, Lease, Need
from labcoat.sandboxes.base import ExecResult, Sandbox, SandboxProvider, SandboxSpec

OnLease = Callable[[Lease, SandboxSpec], None]
"""Told about each admitted sandbox (the run logs the slot and the GPU ids)."""


class LeasedSandbox:
    """A sandbox and the lease it lives under; closing it gives the lease back."""

    def __init__(self, inner: Sandbox, lease: Lease, admission: Admission) -> None:
        self.inner, self.lease, self.admission = inner, lease, admission
        self.id, self.spec = inner.id, inner.spec

    async def exec(self, cmd: str | Sequence[str], *, cwd: str | None = None,
                   env: Mapping[str, str] | None = None, timeout_s: float | None = None,
                   stdin: bytes | str | None = None) -> ExecResult:
        return await self.inner.exec(cmd, cwd=cwd, env=env, timeout_s=timeout_s, stdin=stdin)

    async def read_file(self, path: str, *, max_bytes: int = 10 * 1024 * 1024) -> bytes:
        return await self.inner.read_file(path, max_bytes=max_bytes)

    async def write_file(self, path: str, data: bytes | str) -> None:
        await self.inner.write_file(path, data)

    async def put_dir(self, src: Path, dest: str = "/workspace") -> None:
        await self.inner.put_dir(src, dest)

    async def get_dir(self, src: str, dest: Path, *, max_bytes: int | None = None) -> None:
        await self.inner.get_dir(src, dest, max_bytes=max_bytes)

    async def kill_all(self) -> int:
        return await self.inner.kill_all()

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            self.admission.release(self.lease)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AdmittedProvider:
    """Creates sandboxes through `inner` once `admission` grants each a lease."""

    def __init__(self, inner: SandboxProvider, admission: Admission, *,
                 on_lease: OnLease | None = None) -> None:
        self.inner, self.admission, self.on_lease = inner, admission, on_lease

    async def create(self, spec: SandboxSpec) -> Sandbox:
        lease = await self.admission.acquire(Need.of(spec))
        try:
            if lease.gpu_ids:
                spec = spec.model_copy(update={"gpu_ids": lease.gpu_ids})
            box = await self.inner.create(spec)
        except BaseException:
            self.admission.release(lease)
            raise
        if self.on_lease is not None:
            self.on_lease(lease, spec)
        return LeasedSandbox(box, lease, self.admission)

    @property
    def scratch_root(self) -> Path | None:
        """Where the inner provider keeps its sandboxes' folders (for the disk floor)."""
        root = getattr(self.inner, "scratch_root", None)
        return root if isinstance(root, Path) else None

    async def cleanup(self, run_id: str | None = None) -> int:
        return await self.inner.cleanup(run_id)

    async def aclose(self) -> None:
        await self.inner.aclose()
