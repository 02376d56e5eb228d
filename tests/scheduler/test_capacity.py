"""Resource-aware admission in real runs, and the container configuration GPUs produce.

No GPU exists on this machine, so the GPU tests inject an inventory (`--gpu-ids`, or
`Capacity(gpu_ids=...)`) and check the allocation and the Docker device requests it produces
without starting a GPU container; on a GPU host the same device requests reach the engine.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from labcoat.log import read_events
from labcoat.sandboxes import _container as ctr
from labcoat.sandboxes.admission import Admission, Capacity, Need
from labcoat.sandboxes.base import SandboxSpec
from tests.loop.conftest import labcoat, make_experiment, run_dir_of


def test_four_gpu_leases_become_four_distinct_device_requests(tmp_path: Path) -> None:
    admission = Admission(Capacity(cpus=64, memory_mb=1 << 20, gpu_ids=("0", "1", "2", "3")))

    async def leases() -> list[tuple[str, ...]]:
        return [(await admission.acquire(Need(1, 1024, gpus=1))).gpu_ids for _ in range(4)]

    requests = []
    for ids in asyncio.run(leases()):
        spec = SandboxSpec(image="x", run_id="r", gpus=1, gpu_ids=ids)
        config = ctr.host_config(spec, tmp_path)
        requests.append(config["device_requests"][0])
    assert sorted(r["DeviceIDs"][0] for r in requests) == ["0", "1", "2", "3"]
    assert all(r["Capabilities"] == [["gpu"]] and not r.get("Count") for r in requests)


def test_without_admission_a_gpu_spec_asks_for_a_count(tmp_path: Path) -> None:
    config = ctr.host_config(SandboxSpec(image="x", run_id="r", gpus=2), tmp_path)
    assert config["device_requests"][0]["Count"] == 2


@pytest.mark.docker
def test_a_spec_wanting_more_gpus_than_exist_is_refused_before_anything(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy", resources={"cpus": 0.5, "memory": "256m",
                                                       "timeout_s": 60, "gpus": 5})
    proc = labcoat("run", str(exp), "--gpu-ids", "0,1,2,3", "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 2, proc.stderr
    assert "5 GPU(s) per sandbox, but this machine offers 4 (0, 1, 2, 3)" in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.docker
def test_twelve_gib_sandboxes_on_24_gib_never_exceed_two_whatever_parallel(
        tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy", resources={"cpus": 0.25, "memory": "12g",
                                                       "timeout_s": 60})
    proc = labcoat("run", str(exp), "--memory", "24g", "--parallel", "4", "--max-iterations",
                   "2", "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    events = read_events(run_dir_of(proc))
    said = [e for e in events if e.type == "capacity"]
    assert len(said) == 1 and said[0].fits == 2 and "fewer than --parallel 4" in said[0].note
    slots = [e.slot for e in events if e.type == "sandbox_leased"]
    assert slots and set(slots) <= {0, 1}  # the lowest free slot is taken: never a third
