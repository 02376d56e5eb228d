"""Admission by resources: memory, CPUs and GPUs by device id, never oversubscribed.

No GPU exists on this machine: the GPU inventory is injected (`Capacity(gpu_ids=...)`) to test
the allocation; the container configuration it produces is checked in test_gpu_containers.py.
"""

from __future__ import annotations

import asyncio

import pytest

from labcoat.errors import ConfigError
from labcoat.sandboxes.admission import Admission, Capacity, Need

GIB = 1024


def test_memory_caps_live_sandboxes_whatever_parallel_says() -> None:
    admission = Admission(Capacity(cpus=64, memory_mb=24 * GIB), max_sandboxes=8)
    need = Need(cpus=1, memory_mb=12 * GIB)
    assert admission.limit(need) == 2

    async def main() -> list[int]:
        first, second = await admission.acquire(need), await admission.acquire(need)
        third = asyncio.ensure_future(admission.acquire(need))
        await asyncio.sleep(0.05)
        assert not third.done() and admission.live == 2  # the third waits
        admission.release(first)
        granted = await asyncio.wait_for(third, 1)
        return [first.slot, second.slot, granted.slot]

    assert asyncio.run(main()) == [0, 1, 0]  # the freed slot is reused


def test_four_gpus_go_to_four_sandboxes_by_device_and_a_fifth_waits() -> None:
    admission = Admission(Capacity(cpus=64, memory_mb=256 * GIB, gpu_ids=("0", "1", "2", "3")))
    need = Need(cpus=1, memory_mb=GIB, gpus=1)

    async def main() -> tuple[list[str], bool, str]:
        leases = [await admission.acquire(need) for _ in range(4)]
        fifth = asyncio.ensure_future(admission.acquire(need))
        await asyncio.sleep(0.05)
        waited = not fifth.done()
        admission.release(leases[2])
        got = await asyncio.wait_for(fifth, 1)
        return [g for lease in leases for g in lease.gpu_ids], waited, got.gpu_ids[0]

    ids, waited, reused = asyncio.run(main())
    assert sorted(ids) == ["0", "1", "2", "3"] and waited and reused == "2"


def test_a_spec_that_never_fits_is_refused_with_what_to_change() -> None:
    admission = Admission(Capacity(cpus=2, memory_mb=8 * GIB, gpu_ids=("0", "1", "2", "3")))
    with pytest.raises(ConfigError, match=r"5 GPU\(s\) per sandbox, but this machine offers 4"):
        admission.check(Need(cpus=1, memory_mb=GIB, gpus=5))
    with pytest.raises(ConfigError, match="--cpus"):
        admission.check(Need(cpus=500, memory_mb=GIB))
    with pytest.raises(ConfigError, match="16384 MB of memory per sandbox"):
        admission.check(Need(cpus=1, memory_mb=16 * GIB))


def test_waiters_are_served_in_arrival_order() -> None:
    admission = Admission(Capacity(cpus=4, memory_mb=4 * GIB))
    big, small = Need(cpus=4, memory_mb=GIB), Need(cpus=1, memory_mb=GIB)

    async def main() -> list[str]:
        held = await admission.acquire(small)
        order: list[str] = []

        async def take(name: str, need: Need) -> None:
            lease = await admission.acquire(need)
            order.append(name)
            admission.release(lease)

        waiting = [asyncio.ensure_future(take("big", big)),
                   asyncio.ensure_future(take("small", small))]
        await asyncio.sleep(0.05)
        assert order == []  # the small one does not overtake the big one that came first
        admission.release(held)
        await asyncio.gather(*waiting)
        return order

    assert asyncio.run(main()) == ["big", "small"]


def test_a_cancelled_waiter_gives_nothing_away() -> None:
    admission = Admission(Capacity(cpus=1, memory_mb=GIB))
    need = Need(cpus=1, memory_mb=GIB)

    async def main() -> int:
        held = await admission.acquire(need)
        waiter = asyncio.ensure_future(admission.acquire(need))
        await asyncio.sleep(0.01)
        waiter.cancel()
        admission.release(held)
        await asyncio.sleep(0.01)
        return admission.live

    assert asyncio.run(main()) == 0
