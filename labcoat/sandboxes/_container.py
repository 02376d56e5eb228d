"""How a `SandboxSpec` becomes a hardened container: create arguments, labels, preflight, scratch.

Secure by default: no network, every command as uid 10001 with no capability at all (an empty
bounding set too), no-new-privileges, the engine's default seccomp profile, a read-only root with
a tmpfs at /tmp, pids/cpu/memory limits with swap equal to memory, an init as PID 1, a capped log
driver, and no environment at all beyond the image's (labcoat hands each command its environment
through the exec channel). Writable folders (`/workspace`, `/outputs`) are per-sandbox host
folders bind-mounted in.

labcoat's own processes (the init, its `sleep`, the exec agent) run as root so that no command
can signal them or reach their descriptors; the container keeps for them only `AGENT_CAPS`: the
agent drops every command to uid 10001 (SETUID, SETGID), kills what the commands leave behind
(KILL) and empties the bounding set its children inherit (SETPCAP).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docker import APIClient, DockerClient
    from docker.types import DeviceRequest

from labcoat.errors import ConfigError, SandboxUnavailable
from labcoat.sandboxes import disk
from labcoat.sandboxes.base import LABEL_HOST, LABEL_PID, LABEL_RUN, LABEL_SUBTASK, SandboxSpec
from labcoat.sandboxes.channel import SANDBOX_GID, SANDBOX_UID
from labcoat.sandboxes.engine import docker_host

log = logging.getLogger(__name__)

AGENT_CAPS = ["SETUID", "SETGID", "KILL", "SETPCAP"]
"""The only capabilities in the container: the exec agent's (commands get none)."""
LABEL_SCRATCH = "labcoat.scratch"
"""Host folder holding the sandbox's bind-mounted writable folders (removed with it)."""
LABEL_NODE = "labcoat.node"
"""The cluster node that made the container (absent on one machine)."""
POOL_SUBTASK = "pool"
LOG_CONFIG = {"type": "json-file", "config": {"max-size": "1m", "max-file": "1"}}
SCRATCH_ENV = "LABCOAT_SCRATCH_DIR"


def labels(spec: SandboxSpec, scratch: Path, *, pooled: bool,
           node: str | None = None) -> dict[str, str]:
    """Every container carries its run, subtask, owning process and host (for the orphan sweep),
    and on a cluster the node that made it."""
    out = {
        LABEL_RUN: spec.run_id,
        LABEL_SUBTASK: POOL_SUBTASK if pooled else spec.subtask_id,
        LABEL_PID: str(os.getpid()),
        LABEL_HOST: socket.gethostname(),
        LABEL_SCRATCH: str(scratch),
    }
    return out | ({LABEL_NODE: node} if node else {})


def container_name(spec: SandboxSpec, *, pooled: bool, node: str | None = None) -> str:
    """`labcoat-<run>-<subtask>-<random>`; on a cluster node `labcoat-<node>-<run>-...`, so
    that sandboxes of two nodes sharing an engine never look alike."""
    sub = POOL_SUBTASK if pooled else (spec.subtask_id or "box")
    where = f"{node[:48]}-" if node else ""
    raw = f"labcoat-{where}{spec.run_id[:32]}-{sub[:32]}-{secrets.token_hex(3)}"
    return re.sub(r"[^a-zA-Z0-9_.-]", "_", raw)


def check_spec(spec: SandboxSpec) -> None:
    """Refuse isolation-weakening settings nobody opted into; log the ones somebody did."""
    for mount in spec.mounts:
        if not mount.read_only and not spec.unsafe_writable_mounts:
            raise ConfigError(
                f"sandbox mount {mount.source} -> {mount.target} is writable; set "
                "`unsafe_writable_mounts=True` to allow it, or mount it read-only"
            )
        if not mount.read_only:
            log.warning("UNSAFE: writable host mount %s -> %s", mount.source, mount.target)
    if spec.unsafe_privileged:
        log.warning("UNSAFE: sandbox for run %s runs privileged", spec.run_id)
    if spec.network != "none":
        log.warning("sandbox for run %s has network %r (asked for by the spec)", spec.run_id,
                    spec.network)


def create_kwargs(api: APIClient, spec: SandboxSpec, name: str, scratch: Path, *, pooled: bool,
                  node: str | None = None) -> dict[str, Any]:
    """Arguments for `APIClient.create_container`."""
    return {
        "image": spec.image, "name": name, "entrypoint": ["sleep"], "command": ["infinity"],
        "user": "0:0", "working_dir": spec.workdir,
        "labels": labels(spec, scratch, pooled=pooled, node=node), "hostname": "sandbox",
        "environment": {},
        "host_config": api.create_host_config(**host_config(spec, scratch)),
    }


def host_config(spec: SandboxSpec, scratch: Path) -> dict[str, Any]:
    memory = f"{spec.memory_mb}m"
    config: dict[str, Any] = {
        "network_mode": spec.network, "cap_drop": ["ALL"], "cap_add": AGENT_CAPS,
        "privileged": spec.unsafe_privileged,
        "security_opt": ["no-new-privileges:true"], "read_only": True, "init": True,
        "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={spec.tmpfs_mb}m,mode=1777"},
        "pids_limit": spec.pids_limit, "nano_cpus": int(spec.cpus * 1e9),
        "mem_limit": memory, "memswap_limit": memory, "log_config": LOG_CONFIG,
        "binds": binds(spec, scratch), "ipc_mode": "private",
    }
    if spec.gpus:
        config["device_requests"] = [gpu_request(spec)]
    return config


def gpu_request(spec: SandboxSpec) -> DeviceRequest:
    """The container's GPUs: the device ids admission gave it, else (no admission) a count."""
    from docker.types import DeviceRequest

    if spec.gpu_ids:
        return DeviceRequest(device_ids=list(spec.gpu_ids), capabilities=[["gpu"]])
    return DeviceRequest(count=spec.gpus, capabilities=[["gpu"]])


def binds(spec: SandboxSpec, scratch: Path) -> dict[str, dict[str, str]]:
    out = {str(scratch_dir(scratch, d)): {"bind": d, "mode": "rw"} for d in spec.writable_dirs}
    for mount in spec.mounts:
        out[str(mount.source.resolve())] = {"bind": mount.target,
                                            "mode": "ro" if mount.read_only else "rw"}
    return out


def scratch_dir(scratch: Path, target: str) -> Path:
    """The host folder behind writable sandbox folder `target` (e.g. /workspace)."""
    return scratch / target.strip("/").replace("/", "__")


def scratch_root() -> Path:
    """Where per-sandbox host folders live: $LABCOAT_SCRATCH_DIR or the temp dir."""
    base = os.environ.get(SCRATCH_ENV) or os.path.join(tempfile.gettempdir(), "labcoat-sandboxes")
    return Path(base)


def process_dir(root: Path) -> Path:
    """This process's share of the scratch root; the sweep removes those of dead processes."""
    return root / f"{socket.gethostname()}-{os.getpid()}"


def make_scratch(root: Path, name: str, targets: tuple[str, ...],
                 disk_mb: int | None = None) -> Path:
    """A sandbox's host folder, with one subfolder per writable target owned by the sandbox user.

    With `disk_mb`, the folder is a loop-mounted disk image of that size where the host allows
    (`disk.make_image`), else a plain folder that the sandbox's `DiskGuard` watches. Its parent,
    this process's share of the root, is mode 0700: no other host user reaches a sandbox's files.
    """
    own = process_dir(root)
    own.mkdir(mode=0o700, parents=True, exist_ok=True)
    own.chmod(0o700)  # mkdir's mode passes through the umask
    scratch = own / name
    if not (disk_mb and disk.make_image(scratch, disk_mb)):
        scratch.mkdir(mode=0o700, exist_ok=True)
    for target in targets:
        folder = scratch_dir(scratch, target)
        folder.mkdir(parents=True, exist_ok=True)
        _give_to_sandbox(folder)
    return scratch


def _give_to_sandbox(folder: Path) -> None:
    try:
        os.chown(folder, SANDBOX_UID, SANDBOX_GID)
    except PermissionError:  # not root: uid 10001 may write; the 0700 parent keeps others out
        folder.chmod(0o777)


def remove_scratch(scratch: Path | str | None, root: Path | None = None) -> bool:
    """Unmount and delete a sandbox's host folder and its disk image, but only a folder that
    resolves to `root/<process>/<name>`: a label naming anything else (`/home`, a `..` path, a
    symlink out of the root) is left alone. True when it was removed. Without `root`, `scratch`
    is a folder this process made itself (a sandbox's own)."""
    if not scratch:
        return False
    path = Path(os.path.realpath(scratch))
    if root is not None and path.parent.parent != Path(os.path.realpath(root)):
        log.warning("not removing %s: it is not a sandbox folder under %s", scratch, root)
        return False
    for point in disk.mounts_under(path):
        disk.unmount(point)
    shutil.rmtree(path, ignore_errors=True)
    path.with_name(path.name + disk.IMAGE_SUFFIX).unlink(missing_ok=True)
    return True


def preflight(client: DockerClient, spec: SandboxSpec) -> None:
    """Everything that can fail before a container exists: image present, GPUs available."""
    from docker.errors import ImageNotFound

    try:
        client.images.get(spec.image)
    except ImageNotFound:
        raise SandboxUnavailable(
            f"sandbox image {spec.image!r} is not on the engine at {docker_host()}; fix: run "
            "`labcoat sandbox build` (labcoat's default image) or `docker pull "
            f"{spec.image}` / build it yourself"
        ) from None
    if spec.gpus:
        check_gpus(client, spec.gpus)


def check_gpus(client: DockerClient, wanted: int) -> None:
    have = gpu_count(client)
    if have < wanted:
        raise SandboxUnavailable(
            f"the spec asks for {wanted} GPU(s) but the engine at {docker_host()} can give "
            f"{have}; fix: set `resources.gpus: 0`, or install the NVIDIA driver and "
            "nvidia-container-toolkit and restart the engine"
        )


def gpu_count(client: DockerClient) -> int:
    """GPUs the engine can hand out: NVIDIA devices on this host plus a GPU-capable runtime."""
    runtimes = client.info().get("Runtimes", {}) or {}
    hook = "nvidia" in runtimes or shutil.which("nvidia-container-runtime-hook") is not None
    if not hook:
        return 0
    return sum(1 for p in Path("/dev").glob("nvidia[0-9]*"))
