"""Building labcoat's default sandbox image, offline when no registry can be reached.

The image's files (Dockerfile, requirements, the offline base's bootstrap script) ship inside the
package, in `labcoat/sandboxes/dockerfiles/`, so an installed labcoat builds its image as a
checkout does. The tag carries a content hash of that folder, so editing the Dockerfile rebuilds
and an unchanged tree is reused. The classic builder tags only a finished image, and the offline
base is tagged only after `mmdebstrap` succeeded, so an interrupted build never leaves a half-made
image under a tag.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from labcoat.errors import SandboxUnavailable
from labcoat.treehash import tree_digest

IMAGE_REPO = "labcoat-sandbox"
BASE_REPO = "labcoat-base"
IMAGE_ENV = "LABCOAT_IMAGE"

Say = Callable[[str], None]


def docker_dir() -> Path:
    """The image's files: package data next to this module (installed or editable alike)."""
    return Path(__file__).resolve().with_name("dockerfiles")


def tree_hash(path: Path) -> str:
    """The image tag's content hash of a folder: 12 hex digits, `__pycache__` left out."""
    return tree_digest(path, skip=frozenset({"__pycache__"}))[:12]


def default_image() -> str:
    """The image a spec without `image:` uses: `$LABCOAT_IMAGE`, else the tag of the image files
    this labcoat ships (`docker_dir()`)."""
    if os.environ.get(IMAGE_ENV):
        return os.environ[IMAGE_ENV]
    folder = docker_dir()
    if not (folder / "Dockerfile").is_file():
        return f"{IMAGE_REPO}:latest"
    return f"{IMAGE_REPO}:{tree_hash(folder)}"


def base_tag() -> str:
    """The offline base image's tag: changes when the bootstrap script changes."""
    script = docker_dir() / "bootstrap-base.sh"
    return f"{BASE_REPO}:{hashlib.sha256(script.read_bytes()).hexdigest()[:12]}"


def image_exists(client: object, tag: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        client.images.get(tag)  # type: ignore[attr-defined]
    except ImageNotFound:
        return False
    return True


def build_image(*, base: str | None = None, force: bool = False, say: Say = print) -> str:
    """Build (or reuse) the default sandbox image and return its tag."""
    from labcoat.sandboxes.engine import connect

    client = connect()
    try:
        return _build_with(client, base=base, force=force, say=say)
    finally:
        client.close()


def _build_with(client: object, *, base: str | None, force: bool, say: Say) -> str:
    tag = default_image()
    if not force and image_exists(client, tag):
        say(f"sandbox image {tag} is up to date")
        return tag
    base = base or ensure_offline_base(client, say)
    wheels = download_wheels(say)
    with tempfile.TemporaryDirectory(prefix="labcoat-build-") as ctx:
        _prepare_context(Path(ctx), wheels)
        _docker_build(client, Path(ctx), tag, base, say)
    client.images.get(tag).tag(IMAGE_REPO, "latest")  # type: ignore[attr-defined]
    say(f"built sandbox image {tag}")
    return tag


def ensure_offline_base(client: object, say: Say) -> str:
    tag = base_tag()
    if image_exists(client, tag):
        return tag
    say(f"making the offline base image {tag} with mmdebstrap (about 40 s)")
    script = docker_dir() / "bootstrap-base.sh"
    proc = subprocess.run(["bash", str(script), tag], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SandboxUnavailable(
            f"could not make the offline base image {tag}: {proc.stderr.strip()[-800:]}\n"
            "fix: install mmdebstrap (`apt-get install mmdebstrap`), or on a machine with registry "
            "access run `labcoat sandbox build --base python:3.11-slim`"
        )
    return tag


def wheel_cache() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "labcoat" / "wheels"


def download_wheels(say: Say) -> Path:
    """Wheels for the image's Python packages, fetched by the host's pip once and cached."""
    reqs = docker_dir() / "requirements-sandbox.txt"
    key = hashlib.sha256(reqs.read_bytes() + _platform_tag().encode()).hexdigest()[:12]
    target = wheel_cache() / key
    if target.is_dir():
        return target
    say("downloading wheels for the sandbox image with the host's pip")
    tmp = Path(tempfile.mkdtemp(prefix="wheels-", dir=_mkdirs(wheel_cache())))
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:",
           "--platform", _platform_tag(), "--python-version", "3.11", "--implementation", "cp",
           "-r", str(reqs), "-d", str(tmp)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SandboxUnavailable(
            f"pip could not download the sandbox image's wheels: {proc.stderr.strip()[-800:]}\n"
            "fix: check that PyPI is reachable (`pip download numpy`), then re-run "
            "`labcoat sandbox build`"
        )
    tmp.rename(target)
    return target


def _platform_tag() -> str:
    machine = os.uname().machine
    return f"manylinux_2_28_{'aarch64' if machine in ('aarch64', 'arm64') else 'x86_64'}"


def _mkdirs(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _prepare_context(ctx: Path, wheels: Path) -> None:
    src = docker_dir()
    for name in ("Dockerfile", "requirements-sandbox.txt"):
        shutil.copy2(src / name, ctx / name)
    shutil.copytree(wheels, ctx / "wheels")


def _docker_build(client: object, ctx: Path, tag: str, base: str, say: Say) -> None:
    from docker.errors import APIError, BuildError

    lines: list[str] = []
    try:
        stream = client.api.build(  # type: ignore[attr-defined]
            path=str(ctx), tag=tag, buildargs={"BASE_IMAGE": base}, rm=True, forcerm=True,
            decode=True, pull=False,
        )
        for chunk in stream:
            if "error" in chunk:
                raise BuildError(chunk["error"], iter([{"stream": ln} for ln in lines]))
            text = chunk.get("stream", "").rstrip()
            if text:
                lines.append(text)
                if text.startswith("Step "):
                    say(f"  {text}")
    except (BuildError, APIError) as err:
        tail = "\n".join(lines[-15:])
        raise SandboxUnavailable(
            f"building {tag} from {docker_dir() / 'Dockerfile'} failed: {err}\n{tail}\n"
            "fix: read the step above; `labcoat sandbox build --force` retries from scratch"
        ) from None
