"""Connecting to the Docker engine, with one clear message when it is not there."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from labcoat.errors import SandboxUnavailable

if TYPE_CHECKING:
    import docker

START_HINT = (
    "start the engine (`make setup` does it on Debian/Ubuntu as root: it installs docker.io "
    "and runs dockerd; elsewhere `sudo systemctl start docker`), then check with `docker info`"
)


def docker_host() -> str:
    """Where the engine is expected: $DOCKER_HOST or the default socket."""
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def connect(timeout_s: float = 5.0) -> docker.DockerClient:
    """A client that has answered a ping, or `SandboxUnavailable` naming the socket and the fix."""
    import docker
    from docker.errors import DockerException

    client = None
    try:
        client = docker.DockerClient(base_url=docker_host(), timeout=int(max(1, timeout_s)))
        client.ping()
    except (DockerException, OSError) as err:
        if client is not None:
            client.close()  # its half-open socket would otherwise leak
        raise SandboxUnavailable(
            f"Docker engine not reachable at {docker_host()} ({_short(err)}); {START_HINT}"
        ) from None
    # Commands may legitimately run for long; the ping used the short timeout.
    client.api.timeout = 600
    return client


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:200]


def ping(timeout_s: float = 3.0) -> None:
    """Check that the engine answers (`SandboxUnavailable` otherwise), holding no connection."""
    connect(timeout_s).close()
