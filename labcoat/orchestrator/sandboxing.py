"""From an experiment to sandboxes: the image it runs in, the spec of each sandbox, and the floor
of free host disk below which no new sandbox work starts."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from labcoat.errors import ConfigError, DiskLow
from labcoat.experiment import Experiment, parse_memory
from labcoat.sandboxes.base import SandboxProvider, SandboxSpec
from labcoat.sandboxes.image import default_image

FLOOR_ENV = "LABCOAT_MIN_FREE_DISK"
"""Free disk below which no new work starts: a size (`2g`), a share of the disk (`5%`), or 0."""
DEFAULT_FLOOR = "2g"


def image_of(exp: Experiment) -> str:
    """The experiment's `image:`, else labcoat's own sandbox image."""
    return exp.spec.image or default_image()


def sandbox_spec(exp: Experiment, run_id: str, subtask_id: str = "", *,
                 env: Mapping[str, str] | None = None, **overrides: Any) -> SandboxSpec:
    """A `SandboxSpec` with the experiment's image and resources; `overrides` win."""
    res = exp.spec.resources
    fields: dict[str, Any] = dict(
        image=image_of(exp), run_id=run_id, subtask_id=subtask_id, cpus=res.cpus,
        memory_mb=res.memory_mb, pids_limit=res.pids, gpus=res.gpus, network=res.network,
        disk_mb=res.disk, env=dict(env or {}),
    )
    return SandboxSpec(**(fields | overrides))


def check_disk_floor(run_dir: Path, provider: SandboxProvider) -> None:
    """Before work starts (a role's or a grading's): pause the run (`DiskLow`, exit 3) when the
    disk of the run directory or of the sandboxes' folders has less free space than the floor.

    A sandbox cannot fill the host (`resources.disk` bounds it) and its space goes back with it,
    so a subtask that filled its own disk fails alone and a resume finds the room again.
    """
    scratch = getattr(provider, "scratch_root", None) or Path(tempfile.gettempdir())
    for path in (run_dir, Path(scratch)):
        usage = shutil.disk_usage(_existing(path))
        floor = disk_floor(usage.total)
        if usage.free < floor:
            raise DiskLow(
                f"only {_gb(usage.free)} free on the disk of {path}, below labcoat's floor of "
                f"{_gb(floor)} (${FLOOR_ENV}); no new work was started. Fix: free some space "
                f"(old runs, `docker system prune`), then `labcoat resume {run_dir}`")


def check_workspace_fits(exp: Experiment) -> None:
    """Every sandbox starts with a copy of the workspace: refuse (exit 2, before the run exists)
    a workspace larger than `resources.disk`, which no role or grading could even start with."""
    try:
        need = _tree_size(exp.workspace_dir)
    except OSError:
        return  # an unreadable workspace is reported where it is read in full
    limit = exp.spec.resources.disk << 20
    if need > limit:
        raise ConfigError(
            f"{exp.workspace_dir} takes {need / 1e6:.0f} MB, more than the {limit / 1e6:.0f} MB "
            f"each sandbox may write (`resources.disk` in {exp.dir / 'experiment.yaml'}); fix: "
            "raise `resources.disk`, or move large data out of the workspace")


def _tree_size(folder: Path) -> int:
    """Disk a copy of `folder` takes (4 KiB blocks; .git and __pycache__ are not copied)."""
    total, stack = 0, [folder]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.name in (".git", "__pycache__"):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                    total += 4096
                elif entry.is_file(follow_symlinks=False):
                    total += -(-entry.stat(follow_symlinks=False).st_size // 4096) * 4096
    return total


def disk_floor(total: int) -> int:
    """The floor in bytes for a disk of `total` bytes, from `$LABCOAT_MIN_FREE_DISK`."""
    raw = os.environ.get(FLOOR_ENV, "").strip() or DEFAULT_FLOOR
    try:
        if raw.endswith("%"):
            share = float(raw[:-1])
            if not 0 <= share <= 100:
                raise ValueError(raw)
            return int(total * share / 100)
        return 0 if raw == "0" else parse_memory(raw) << 20
    except ValueError:
        raise ConfigError(f"{FLOOR_ENV}={raw!r} is neither a size nor a share of the disk; fix: "
                          "e.g. 2g, 500m or 5% (0 turns the floor off)") from None


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


HOST_TMP = "tmp"
"""The run directory's folder for host-side copies of trees (base, result, grading)."""


def host_tmp(run_dir: Path) -> Path:
    """Where the run copies trees on the host: under its run directory rather than /tmp, so that
    a killed run leaves nothing behind in /tmp; `clear_host_tmp` empties it at each start."""
    return run_dir / HOST_TMP


def clear_host_tmp(run_dir: Path) -> Path:
    """Empty the run's host-side copies (a killed run's leftovers); the run holds its lock."""
    folder = host_tmp(run_dir)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
