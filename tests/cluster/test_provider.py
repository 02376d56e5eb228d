"""The Ray provider on the local two-node cluster, in this process."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import psutil
import pytest

from labcoat.errors import SandboxUnavailable
from labcoat.sandboxes import SandboxSpec
from labcoat.sandboxes.base import LABEL_PID
from labcoat.sandboxes.ray import RayProvider
from labcoat.sandboxes.ray.sandbox import RaySandbox
from tests.cluster import shared
from tests.cluster.local import FAST_FAILURE

pytestmark = [pytest.mark.docker, pytest.mark.ray]


def test_an_actor_that_ends_leaves_the_runs_other_sandboxes(sandbox_image: str) -> None:
    """Actors of one run share a node's engine (here, both nodes share one): an actor that ends
    removes its own containers, never another actor's."""
    cluster = shared.enter()
    run_id = f"pytest-ray-{uuid.uuid4().hex[:8]}"
    spec = _spec(sandbox_image, run_id, "a")

    async def scenario() -> None:
        async with RayProvider(run_id, address=cluster.address, idle_s=0.2) as provider:
            first = await provider.create(spec)
            second = await provider.create(spec.model_copy(update={"subtask_id": "b"}))
            await first.aclose()  # its actor idles for 0.2 s, then ends
            await asyncio.sleep(3)
            assert (await second.exec(["echo", "alive"])).stdout == "alive\n"
            await second.aclose()

    asyncio.run(scenario())


# ---- a lost node is not a dead actor ----------------------------------------------------------

def _actor_pid(docker_client: Any, box: RaySandbox) -> int:
    """The pid of the actor that holds `box` (its container's pid label)."""
    return int(docker_client.api.inspect_container(box.id)["Config"]["Labels"][LABEL_PID])


def _wait_gone(pid: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(pid).wait(60)


def _on_node(docker_client: Any, boxes: list[RaySandbox], pids: set[int]) -> RaySandbox:
    """The sandbox whose actor runs among `pids`."""
    for box in boxes:
        if _actor_pid(docker_client, box) in pids:
            return box
    raise AssertionError("no sandbox landed on the second node")


@pytest.fixture
def fast_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """The health-check window labcoat waits for a node's verdict, as the test's nodes use it."""
    for key, value in FAST_FAILURE.items():
        monkeypatch.setenv(key, value)


@pytest.mark.usefixtures("fast_failure")
def test_a_killed_node_is_lost_at_once_not_taken_for_a_dead_actor(
        sandbox_image: str, docker_client: Any) -> None:
    """Ray sees the actor's death at once and the node's only when its health checks decide:
    asked right away, Ray still called the node alive and the log never said `node_lost`
    (CI under load). The node's raylet refusing connections, or Ray's verdict within its
    health-check window, decides instead."""
    cluster = shared.enter()
    victim = shared.second(cluster)
    run_id = f"pytest-ray-{uuid.uuid4().hex[:8]}"
    told: list[tuple[str, str]] = []

    async def scenario() -> None:
        async with RayProvider(run_id, address=cluster.address, pool_size=0,
                               on_node_lost=lambda n, s, why: told.append((n.name, why))
                               ) as provider:
            boxes = [await provider.create(_spec(sandbox_image, run_id, f"s{i}"))
                     for i in range(4)]  # two per node: some land on the second one
            box = _on_node(docker_client, boxes, set(cluster.node_pids(victim)))
            assert (await box.exec(["true"])).returncode == 0  # its direct line is up
            cluster.kill(victim)
            with pytest.raises(SandboxUnavailable, match="was lost") as lost:
                await box.exec(["true"])
            assert told == [(box.node.name, told[0][1])], (told, str(lost.value))
            others = [b for b in boxes if b.node.node_id != box.node.node_id]
            assert (await others[0].exec(["echo", "on"])).stdout == "on\n"

    asyncio.run(scenario())


@pytest.mark.usefixtures("fast_failure")
def test_a_killed_actor_on_a_live_node_is_not_a_lost_node(sandbox_image: str,
                                                           docker_client: Any) -> None:
    cluster = shared.enter()
    run_id = f"pytest-ray-{uuid.uuid4().hex[:8]}"
    told: list[str] = []

    async def scenario() -> None:
        import ray

        async with RayProvider(run_id, address=cluster.address, pool_size=0,
                               on_node_lost=lambda n, s, why: told.append(n.name)) as provider:
            box = await provider.create(_spec(sandbox_image, run_id, "a"))
            pid = _actor_pid(docker_client, box)
            ray.kill(box.actor, no_restart=True)  # asynchronous: wait until its process is gone
            await asyncio.to_thread(_wait_gone, pid)
            with pytest.raises(SandboxUnavailable, match=r"its actor on node \S+ died"):
                await box.exec(["true"])
            assert told == [] and provider.nodes.lost_ids == set()

    asyncio.run(scenario())


def _spec(image: str, run_id: str, subtask: str) -> SandboxSpec:
    return SandboxSpec(image=image, run_id=run_id, subtask_id=subtask, cpus=0.5,
                       memory_mb=256, tmpfs_mb=16)
