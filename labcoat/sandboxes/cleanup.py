"""Removing labcoat containers that outlived their process: the orphan sweep and `sandbox cleanup`.

Every container carries `labcoat.pid` and `labcoat.host`. A container whose host is this machine
and whose process is gone is an orphan (its run was SIGKILLed, or the machine lost power): the
provider sweeps those when it starts, and `labcoat sandbox cleanup` does it by hand. Containers of
live processes and of other hosts sharing the engine are left alone unless a run id is named.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docker import DockerClient

from labcoat.sandboxes import _container as ctr
from labcoat.sandboxes import disk
from labcoat.sandboxes.base import LABEL_HOST, LABEL_PID, LABEL_RUN


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def is_orphan(labels: dict[str, str], host: str | None = None) -> bool:
    """A labcoat container of this host whose owning process is gone."""
    if labels.get(LABEL_HOST) != (host or socket.gethostname()):
        return False
    pid = labels.get(LABEL_PID, "")
    return pid.isdigit() and not pid_alive(int(pid))


def labelled(client: DockerClient, label: str = LABEL_RUN) -> list[dict[str, Any]]:
    """Containers carrying `label` (`key` or `key=value`), as the engine's list entries."""
    return list(client.api.containers(all=True, filters={"label": label}))


def find_orphans(client: DockerClient) -> list[dict[str, Any]]:
    return [c for c in labelled(client) if is_orphan(c.get("Labels") or {})]


def remove_containers(client: DockerClient, containers: list[dict[str, Any]],
                      scratch_root: Path | None = None) -> int:
    """Force-remove (never a graceful stop) and delete their host folders; how many went.

    A label is only a claim: the folder it names is deleted only when it resolves to a sandbox
    folder inside `scratch_root` (default: `ctr.scratch_root()`), never elsewhere on the host.
    """
    root = scratch_root or ctr.scratch_root()
    removed = 0
    for container in containers:
        with contextlib.suppress(Exception):
            client.api.remove_container(container["Id"], force=True, v=True)
            removed += 1
        ctr.remove_scratch((container.get("Labels") or {}).get(ctr.LABEL_SCRATCH), root)
    return removed


def sweep_scratch(root: Path) -> None:
    """Remove the scratch folders (and disk images, unmounted first) of dead processes of this
    host."""
    prefix = socket.gethostname() + "-"
    with contextlib.suppress(OSError):
        for folder in root.iterdir():
            pid = folder.name.removeprefix(prefix)
            if folder.name.startswith(prefix) and pid.isdigit() and not pid_alive(int(pid)):
                for point in disk.mounts_under(folder):
                    disk.unmount(point)
                shutil.rmtree(folder, ignore_errors=True)


def sweep_orphans(client: DockerClient, scratch_root: Path | None = None) -> int:
    """Remove orphaned containers of this host and dead processes' scratch folders."""
    removed = remove_containers(client, find_orphans(client), scratch_root)
    sweep_scratch(scratch_root or ctr.scratch_root())
    return removed


def remove_run(client: DockerClient, run_id: str, scratch_root: Path | None = None) -> int:
    """Remove every container of `run_id`, whatever process made it."""
    return remove_containers(client, labelled(client, f"{LABEL_RUN}={run_id}"), scratch_root)


def cleanup_command(run_id: str | None) -> str:
    """`labcoat sandbox cleanup [--run RUN_ID]`: do it and say what was removed."""
    from labcoat.sandboxes.engine import connect

    client = connect()
    try:
        if run_id:
            count = remove_run(client, run_id)
            return f"removed {count} container(s) of run {run_id}"
        count = sweep_orphans(client)
    finally:
        client.close()
    if not count:
        return "no orphaned labcoat containers (containers of running labcoat processes are kept)"
    return f"removed {count} orphaned labcoat container(s) whose process is gone"
