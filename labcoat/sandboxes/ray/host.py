"""`SandboxHost`: the Ray actor that holds one Docker sandbox on its node (runs on the node).

The actor is placed by Ray on a node that advertises `labcoat_sandbox` and has the CPUs, memory
and GPUs the spec asks for; it owns those resources for its lifetime. It drives the node's own
Docker engine through labcoat's Docker backend (`DockerProvider`, `DockerSandbox`): hardening,
the exec channel, limits and labels are exactly those of a sandbox on one machine, and the
container's name and `labcoat.node` label carry the node's name.

An actor holds at most one sandbox at a time. When it is closed the container goes, always, and
the actor may host the next sandbox of the same shape (`open` again): a Ray worker process costs
seconds to start, a container a fraction of one. Nothing of a closed sandbox survives in the
actor but the engine connection.

Files arrive and leave as `wire.Archive`s (checked digests, `extract_tar`'s refusals). Mounts
(the grader's folder) arrive the same way and are extracted into a node-local folder that the
container mounts read-only: no shared filesystem is assumed.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labcoat.errors import SandboxUnavailable
from labcoat.sandboxes import files
from labcoat.sandboxes.base import ExecResult, Mount, SandboxSpec
from labcoat.sandboxes.ray import direct, wire

if TYPE_CHECKING:
    from labcoat.sandboxes._sandbox import DockerSandbox
    from labcoat.sandboxes.docker import DockerProvider

log = logging.getLogger(__name__)

TRUSTED_CAP = 1 << 40
"""Per-file cap for what the driver sends (its own workspace and grader): a bound, not a policy."""


def this_node() -> wire.NodeInfo:
    """This process's node, as labcoat names it."""
    import ray

    ctx = ray.get_runtime_context()
    node_id = ctx.get_node_id()
    host = socket.gethostname()
    address = ray.util.get_node_ip_address()
    return wire.NodeInfo(node_id=node_id, name=node_name(host, node_id), hostname=host,
                         address=address)


def node_name(hostname: str, node_id: str) -> str:
    """`<hostname>-<8 hex digits>`, safe in container names."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in hostname)[:40]
    return f"{safe}-{node_id[:8]}"


def _transfer_dir() -> Path:
    from labcoat.sandboxes import _container as ctr

    own = ctr.process_dir(ctr.scratch_root())
    own.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="transfer-", dir=own))


def _trusted(where: str) -> files.Budget:
    return files.Budget(max_file=TRUSTED_CAP, max_total=None, where=where)


def assigned_gpus() -> tuple[str, ...]:
    """The GPU device ids Ray gave this actor on its node (what the container may use)."""
    import ray

    return tuple(str(g) for g in ray.get_runtime_context().get_accelerator_ids().get("GPU", []))


class SandboxHost:
    """One sandbox at a time on this node. Every method runs on the node's event loop."""

    def __init__(self, warm: bool = False) -> None:
        self.warm = warm
        """Keep one container of the last spec's shape started ahead of the next `open`."""
        self.node = this_node()
        self.provider: DockerProvider | None = None
        self.box: DockerSandbox | None = None
        self.line: direct.Server | None = None
        """The open sandbox's direct line for commands (`direct.py`)."""
        self.run_id = ""
        """The run whose sandboxes this actor hosts (a sandbox of another run gets a fresh
        provider)."""
        self.transfer = _transfer_dir()
        """Node-local folder for archives in flight and extracted mounts (in this process's
        share of the scratch root, which the orphan sweep removes once the process is gone)."""

    def info(self) -> wire.NodeInfo:
        return self.node

    async def open(self, spec: dict[str, Any], mounts: list[wire.Archive]) -> wire.Opened:
        """Start a sandbox for `spec` (closing any previous one); its GPUs are this actor's."""
        await self.close()
        checked = SandboxSpec.model_validate(spec)
        update: dict[str, Any] = {"gpu_ids": assigned_gpus() if checked.gpus else ()}
        if mounts:
            update["mounts"] = await asyncio.to_thread(self._place_mounts, checked, mounts)
        checked = checked.model_copy(update=update)
        provider = await self._provider(checked.run_id)
        if checked.mounts or not self.warm:  # mounts are per sandbox: never pooled
            self.box = await provider.create_cold(checked)
        else:
            self.box = await provider.create(checked)
        self.line = await self._open_line(self.box)
        return wire.Opened(id=self.box.id, name=self.box.name, scratch=str(self.box.scratch),
                           gpu_ids=checked.gpu_ids, node=self.node,
                           line=self.line.address() if self.line is not None else None)

    async def _open_line(self, box: DockerSandbox) -> direct.Server | None:
        """Listen for `box`'s commands on the address Ray reaches this node by (None when that
        fails: the driver then sends them as Ray calls)."""

        async def run(call: direct.ExecCall, stdin: bytes | None) -> ExecResult:
            return await box.exec(call.argv, cwd=call.cwd, env=call.env,
                                  timeout_s=call.timeout_s, stdin=stdin)

        if not self.node.address:  # nowhere the driver is sure to reach
            return None
        try:
            return await direct.Server.start(self.node.address, run)
        except OSError as err:
            log.info("node %s: no direct line for %s (%s)", self.node.name, box.name, err)
            return None

    async def _provider(self, run_id: str) -> DockerProvider:
        from labcoat.sandboxes.docker import DockerProvider

        if self.provider is not None and self.run_id != run_id:
            await self.provider.aclose()
            self.provider = None
        if self.provider is None:
            # No run id: closing this actor's provider removes the containers it made, never
            # the run's others (other actors' sandboxes on this engine); the driver sweeps the
            # run's containers on every node when it closes.
            provider = DockerProvider(None, pool_size=1 if self.warm else 0, node=self.node.name)
            await provider.start()
            self.provider, self.run_id = provider, run_id
        return self.provider

    def _place_mounts(self, spec: SandboxSpec, archives: list[wire.Archive]) -> tuple[Mount, ...]:
        """Extract each mount's archive into a fresh node-local folder and point the mount at it."""
        if len(archives) != len(spec.mounts):
            raise ValueError(f"{len(archives)} archives for {len(spec.mounts)} mounts")
        out = []
        for mount, archive in zip(spec.mounts, archives, strict=True):
            folder = Path(tempfile.mkdtemp(prefix="mount-", dir=self.transfer))
            wire.unpack(archive, folder, _trusted(f"mount {mount.target}"))
            folder.chmod(0o755)
            source = folder / archive.name if archive.name else folder
            out.append(mount.model_copy(update={"source": source}))
        return tuple(out)

    def _open_box(self) -> DockerSandbox:
        if self.box is None:
            raise SandboxUnavailable(f"node {self.node.name}: no sandbox is open on this actor "
                                     "(it was closed); retry in a new sandbox")
        return self.box

    async def exec(self, cmd: str | list[str], cwd: str | None, env: Mapping[str, str] | None,
                   timeout_s: float | None, stdin: bytes | None) -> dict[str, Any]:
        result = await self._open_box().exec(cmd, cwd=cwd, env=env, timeout_s=timeout_s,
                                             stdin=stdin)
        return result.model_dump()

    async def read_file(self, path: str, max_bytes: int) -> bytes:
        return await self._open_box().read_file(path, max_bytes=max_bytes)

    async def write_file(self, path: str, data: bytes) -> None:
        await self._open_box().write_file(path, data)

    async def kill_all(self) -> int:
        return await self._open_box().kill_all()

    async def put_dir(self, archive: wire.Archive, dest: str) -> None:
        """Check and extract the archive on the node, then copy it in as a local put_dir."""
        box = self._open_box()
        folder = Path(tempfile.mkdtemp(prefix="in-", dir=self.transfer))
        try:
            await asyncio.to_thread(wire.unpack, archive, folder, _trusted(f"put_dir({dest})"))
            await box.put_dir(folder, dest)
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)

    async def get_dir(self, src: str, max_bytes: int | None,
                      max_file_bytes: int | None) -> wire.Archive:
        """Copy out with the local refusals and caps, then pack what was taken."""
        box = self._open_box()
        folder = Path(tempfile.mkdtemp(prefix="out-", dir=self.transfer))
        try:
            await box.get_dir(src, folder / "tree", max_bytes=max_bytes,
                              max_file_bytes=max_file_bytes)
            return await asyncio.to_thread(wire.pack, folder / "tree")
        finally:
            await asyncio.to_thread(shutil.rmtree, folder, True)

    async def close(self) -> None:
        """Remove the sandbox's container and its mounts (idempotent)."""
        box, self.box = self.box, None
        line, self.line = self.line, None
        if line is not None:
            await line.close()
        if box is not None:
            await box.aclose()
        for old in self.transfer.glob("mount-*"):
            await asyncio.to_thread(shutil.rmtree, old, True)

    async def shutdown(self) -> None:
        """Remove everything this actor made (its warm container too) before it is killed."""
        await self.close()
        if self.provider is not None:
            await self.provider.aclose()
            self.provider = None
        await asyncio.to_thread(shutil.rmtree, self.transfer, True)
