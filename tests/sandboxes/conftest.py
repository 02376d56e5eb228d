"""Sandbox fixtures: one event loop per module, providers per backend, a shared probe sandbox.

Every backend in `BACKENDS` must pass `test_conformance.py`. Docker runs twice: with the
persistent exec channel (the default) and with one engine exec per command (the fallback); Ray
runs on a local two-node cluster the tests start (marked `ray`, started only when selected).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from labcoat.sandboxes import DockerProvider, SandboxSpec
from tests.cluster.fixtures import _host_network, _ray_cluster_stopped  # noqa: F401

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]

def ray_provider(run_id: str, direct_line: bool = True) -> Any:
    """A `RayProvider` on the shared local two-node cluster (started on first use, in a network
    namespace of its own: see tests/cluster/local.py)."""
    from labcoat.sandboxes.ray import RayProvider
    from tests.cluster import shared

    return RayProvider(run_id, address=shared.enter().address, direct_line=direct_line)


BACKENDS: dict[str, Callable[[str], Any]] = {
    "docker": lambda run_id: DockerProvider(run_id),
    "docker-exec": lambda run_id: DockerProvider(run_id, exec_channel=False),
    "ray": ray_provider,  # commands on each sandbox's direct line
    "ray-calls": lambda run_id: ray_provider(run_id, direct_line=False),  # as Ray calls
}
RAY_BACKENDS = frozenset({"ray", "ray-calls"})
"""Backends that need the local Ray cluster: marked `ray` (`-m "not ray"` leaves them out, and
the cluster is started only when one of them runs)."""


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("backend") in RAY_BACKENDS:
            item.add_marker(pytest.mark.ray)


def new_run_id(tag: str = "t") -> str:
    return f"pytest-{tag}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def run() -> Iterator[Run[Any]]:
    """Run a coroutine on this module's event loop (sandboxes are bound to the loop)."""
    with asyncio.Runner() as runner:
        yield runner.run


@pytest.fixture(scope="module")
def make_spec(sandbox_image: str) -> Callable[..., SandboxSpec]:
    """Small limits: the machine is shared."""

    def make(run_id: str, **kw: Any) -> SandboxSpec:
        base: dict[str, Any] = {"image": sandbox_image, "run_id": run_id, "cpus": 1.0,
                                "memory_mb": 512, "pids_limit": 128, "tmpfs_mb": 64}
        return SandboxSpec(**(base | kw))

    return make
