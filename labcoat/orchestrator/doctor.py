"""`labcoat doctor`: one line per check, the fix for each failing one, never a hang."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labcoat.errors import ConfigError, LabcoatError

MIN_FREE_GB = 2.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True


def check_engine() -> tuple[Check, object | None]:
    from labcoat.sandboxes.engine import connect

    try:
        client = connect(timeout_s=3)
    except LabcoatError as err:
        return Check("docker engine", False, str(err).split(";")[0],
                     "run `make setup` (installs and starts dockerd as root on Debian/Ubuntu) "
                     "or `sudo systemctl start docker`"), None
    version = client.version().get("Version", "?")
    return Check("docker engine", True, f"running, version {version}"), client


def check_image(client: object | None) -> Check:
    from labcoat.sandboxes.image import IMAGE_REPO, default_image, image_exists

    tag = default_image()
    if client is None:
        return Check("sandbox image", False, f"{tag}: cannot tell, the engine is down",
                     "start the engine, then `labcoat sandbox build`")
    if image_exists(client, tag):
        return Check("sandbox image", True, f"{tag} present and current")
    stale = [t for img in client.images.list(IMAGE_REPO) for t in img.tags]  # type: ignore[attr-defined]
    detail = f"{tag} missing" + (f" (older: {', '.join(stale[:3])})" if stale else "")
    return Check("sandbox image", False, detail, "run `labcoat sandbox build`")


def check_keys() -> Check:
    from labcoat.agents.llm.providers import KEY_ENVS

    present = [k for k in KEY_ENVS if os.environ.get(k)]
    if present:
        return Check("api keys", True, f"set: {', '.join(present)}", required=False)
    return Check("api keys", True, "none set: runs use the search brain (no LLM)",
                 f"export {' or '.join(KEY_ENVS)} to use an LLM brain", required=False)


def check_disk(path: Path | None = None) -> Check:
    """Free space against the floor below which runs pause (`$LABCOAT_MIN_FREE_DISK`)."""
    from labcoat.orchestrator.sandboxing import FLOOR_ENV, disk_floor

    path = path or Path.cwd()
    usage = shutil.disk_usage(path)
    try:
        floor = max(disk_floor(usage.total), int(MIN_FREE_GB * 1e9))
    except LabcoatError as err:
        return Check("disk", False, str(err).split("; fix:")[0], f"set ${FLOOR_ENV} to e.g. 2g")
    if usage.free >= floor:
        return Check("disk", True, f"{usage.free / 1e9:.1f} GB free at {path}")
    return Check("disk", False, f"only {usage.free / 1e9:.2f} GB free at {path}",
                 f"free at least {floor / 1e9:.1f} GB (runs, images and wheels need room; below "
                 f"${FLOOR_ENV} a run pauses before new work)")


def check_disk_limits() -> Check:
    """How `resources.disk` is enforced here: a real trial of the hard limit, else the watchdog."""
    from labcoat.sandboxes._container import scratch_root
    from labcoat.sandboxes.disk import WATCHDOG_NOTE, try_hard_limit

    why = try_hard_limit(scratch_root())
    if why is None:
        return Check("sandbox disk limits", True, "hard: each sandbox writes into its own "
                     "loop-mounted ext4 image (ENOSPC at `resources.disk`)", required=False)
    return Check("sandbox disk limits", True, f"watchdog: {why}", WATCHDOG_NOTE, required=False)


def run_checks() -> list[Check]:
    engine, client = check_engine()
    try:
        return [engine, check_image(client), check_keys(), check_disk(), check_disk_limits()]
    finally:
        if client is not None:
            client.close()  # type: ignore[attr-defined]


def run_doctor(echo: Callable[[str], None] = print, cluster: str | None = None,
               build: bool = False) -> int:
    """Print the checks; 0 only when a search-brain run can start (with `cluster`: on that Ray
    cluster's nodes, each listed; `build` builds the image on nodes that lack it)."""
    from labcoat.sandboxes.ray.address import normalize

    if normalize(cluster) is not None:  # `local` is this machine (bad input: exit 2)
        return _cluster_doctor(echo, str(cluster), build)
    checks = run_checks()
    for c in checks:
        mark = "ok  " if c.ok else "FAIL"
        echo(f"[{mark}] {c.name}: {c.detail}")
        if c.fix and (not c.ok or not c.required):
            echo(f"       fix: {c.fix}" if not c.ok else f"       note: {c.fix}")
    return 0 if all(c.ok for c in checks if c.required) else 1


def _cluster_doctor(echo: Callable[[str], None], cluster: str, build: bool) -> int:
    from labcoat.sandboxes.image import default_image
    from labcoat.sandboxes.ray.ops import doctor_lines

    try:
        lines, ok = doctor_lines(cluster, default_image(), build=build)
    except ConfigError:
        raise
    except LabcoatError as err:  # the cluster does not answer
        lines, ok = [f"[FAIL] cluster {cluster}: {err}"], False
    keys = check_keys()
    for line in [*lines, f"[{'ok  ' if keys.ok else 'FAIL'}] {keys.name}: {keys.detail}"]:
        echo(line)
    return 0 if ok else 1
