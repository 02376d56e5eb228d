"""Connecting to the Docker engine, with one clear message when it is not there."""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from labcoat.errors import SandboxUnavailable, first_line

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
        _check_socket(timeout_s)
        client = docker.DockerClient(base_url=docker_host(), timeout=int(max(1, timeout_s)))
        client.ping()
    except (DockerException, OSError) as err:
        if client is not None:
            client.close()
        raise SandboxUnavailable(
            f"Docker engine not reachable at {docker_host()} ({first_line(err)}); {START_HINT}"
        ) from None
    # Commands may legitimately run for long; the ping used the short timeout.
    client.api.timeout = 600
    return client


def _check_socket(timeout_s: float) -> None:
    """Connect to a unix socket ourselves first: docker-py never closes the socket of a failed
    connect (its `UnixHTTPConnection.connect`), which leaks one per attempt while it is down."""
    host = docker_host()
    if not host.startswith("unix://"):
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(host.removeprefix("unix://"))


def ping(timeout_s: float = 3.0) -> None:
    """Check that the engine answers (`SandboxUnavailable` otherwise), holding no connection."""
    connect(timeout_s).close()
