"""The Ray provider on the local two-node cluster, in this process."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from labcoat.sandboxes import SandboxSpec
from labcoat.sandboxes.ray import RayProvider
from tests.cluster import shared

pytestmark = [pytest.mark.docker, pytest.mark.ray]


def test_an_actor_that_ends_leaves_the_runs_other_sandboxes(sandbox_image: str) -> None:
    """Actors of one run share a node's engine (here, both nodes share one): an actor that ends
    removes its own containers, never another actor's."""
    cluster = shared.enter()
    run_id = f"pytest-ray-{uuid.uuid4().hex[:8]}"
    spec = SandboxSpec(image=sandbox_image, run_id=run_id, subtask_id="a", cpus=0.5,
                       memory_mb=256, tmpfs_mb=16)

    async def scenario() -> None:
        async with RayProvider(run_id, address=cluster.address, idle_s=0.2) as provider:
            first = await provider.create(spec)
            second = await provider.create(spec.model_copy(update={"subtask_id": "b"}))
            await first.aclose()  # its actor idles for 0.2 s, then ends
            await asyncio.sleep(3)
            assert (await second.exec(["echo", "alive"])).stdout == "alive\n"
            await second.aclose()

    asyncio.run(scenario())
