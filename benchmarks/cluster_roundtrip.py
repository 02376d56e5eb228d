"""Ray cluster benchmark: prints one JSON object; every ratio compares figures of the same run.

A local Ray cluster (tests/cluster/local.py: real `ray start` processes in a network namespace of
their own, all traffic on loopback, stopped by the PIDs it started) on this one machine, so
the figures are labcoat's and Ray's overhead, not a network's:

* `exec_true`: `exec(["true"])` through a Ray-backed sandbox vs the local exec channel, medians
  (goal: Ray-backed median <= 3 ms);
* `workspace_roundtrip`: `put_dir` then `get_dir` of a 10 MB and a 100 MB tree, Ray vs local
  (the Ray path packs, checks sha256 and extracts on both sides);
* `dispatch`: one subtask's sandbox life (create, put a small workspace, run `true`, take
  /workspace back, close), Ray vs local, and the difference (goal <= 100 ms);
* `throughput`: `labcoat run --cluster` of an experiment whose runs sleep 2 s, one sandbox slot
  per node, on one node and then on two: subtasks per minute and their ratio (goal >= 1.8).

Usage: `.venv/bin/python benchmarks/cluster_roundtrip.py [--quick]` (as root: it makes a
network namespace).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from labcoat.sandboxes import DockerProvider, SandboxSpec
from labcoat.sandboxes.image import default_image
from tests.cluster.local import LocalCluster

MB = 1024 * 1024


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered) * 1e3, 3),
            "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1e3, 3), "n": len(ordered)}


async def timed(coro: Awaitable[object]) -> float:
    start = time.perf_counter()
    await coro
    return time.perf_counter() - start


@contextlib.asynccontextmanager
async def providers(run_id: str, address: str) -> AsyncIterator[dict[str, Any]]:
    from labcoat.sandboxes.ray import RayProvider

    async with DockerProvider(run_id) as local, RayProvider(run_id, address=address) as ray:
        yield {"local": local, "ray": ray}


async def exec_true(boxes: dict[str, Any], n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, box in boxes.items():
        for _ in range(20):  # warm-up
            await box.exec(["true"])
        out[name] = summary([await timed(box.exec(["true"])) for _ in range(n)])
    out["ratio_median"] = round(out["ray"]["median_ms"] / out["local"]["median_ms"], 3)
    out["goal_ray_median_ms_max"] = 3.0
    return out


def make_tree(root: Path, total_mb: int) -> Path:
    """`total_mb` MB in files of 1 MB (random bytes: nothing compresses them away)."""
    root.mkdir(parents=True)
    for i in range(total_mb):
        (root / f"f{i:04d}.bin").write_bytes(os.urandom(MB))
    return root


async def roundtrip(boxes: dict[str, Any], tmp: Path, sizes: tuple[int, ...], reps: int,
                    ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in sizes:
        tree = make_tree(tmp / f"tree{size}", size)
        row: dict[str, Any] = {}
        for name, box in boxes.items():
            samples = []
            for r in range(reps):
                dest = tmp / f"back-{name}-{size}-{r}"
                start = time.perf_counter()
                await box.put_dir(tree, f"/workspace/t{size}")
                await box.get_dir(f"/workspace/t{size}", dest)
                samples.append(time.perf_counter() - start)
                await box.exec(["rm", "-rf", f"/workspace/t{size}"])
            row[name] = summary(samples) | {
                "mb_per_s": round(2 * size / statistics.median(samples), 1)}
        row["ratio_median"] = round(row["ray"]["median_ms"] / row["local"]["median_ms"], 3)
        out[f"{size}MB"] = row
    return out


async def dispatch(provs: dict[str, Any], spec: SandboxSpec, work: Path, reps: int,
                   ) -> dict[str, Any]:
    async def one(provider: Any) -> float:
        start = time.perf_counter()
        async with await provider.create(spec) as box:
            await box.put_dir(work, "/workspace")
            await box.exec(["true"])
            await box.get_dir("/workspace", work.parent / f"out-{time.monotonic_ns()}")
        return time.perf_counter() - start

    out: dict[str, Any] = {}
    for name in ("local", "ray"):
        await one(provs[name])  # warm-up (Ray: a worker process for the actor)
        out[name] = summary([await one(provs[name]) for _ in range(reps)])
    out["overhead_ms"] = round(out["ray"]["median_ms"] - out["local"]["median_ms"], 1)
    out["goal_overhead_ms_max"] = 100.0
    return out


async def micro(address: str, tmp: Path, quick: bool) -> dict[str, Any]:
    spec = SandboxSpec(image=default_image(), run_id=f"bench-cluster-{os.getpid()}", cpus=1.0,
                       memory_mb=1024, tmpfs_mb=64, disk_mb=2048)
    work = make_tree(tmp / "work", 1)
    async with providers(spec.run_id, address) as provs:
        boxes = {name: await p.create(spec.model_copy(update={"subtask_id": f"b-{name}"}))
                 for name, p in provs.items()}
        try:
            result = {"exec_true": await exec_true(boxes, 100 if quick else 500),
                      "workspace_roundtrip": await roundtrip(boxes, tmp, (10, 100),
                                                             2 if quick else 5)}
        finally:
            for box in boxes.values():
                await box.aclose()
        result["dispatch"] = await dispatch(provs, spec, work, 5 if quick else 15)
    return result


SLEEPY = '''
import json, pathlib, time
x = float(json.loads(pathlib.Path("params.json").read_text())["x"])
time.sleep(2)
pathlib.Path("outputs").mkdir(exist_ok=True)
pathlib.Path("outputs/x.txt").write_text(repr(x))
'''
EVALUATE = '''
import json, pathlib
x = float(pathlib.Path("outputs/x.txt").read_text())
print(json.dumps({"score": 1 - (x - 0.7) ** 2}))
'''


def sleepy_experiment(root: Path) -> Path:
    (root / "workspace").mkdir(parents=True)
    (root / "grader").mkdir()
    (root / "workspace" / "train.py").write_text(SLEEPY)
    (root / "grader" / "evaluate.py").write_text(EVALUATE)
    spec = {"name": "sleepy", "goal": "Maximise score.", "run": "python3 train.py",
            "evaluate": "python3 /grader/evaluate.py",
            "metric": {"name": "score", "direction": "maximize"},
            "resources": {"cpus": 0.5, "memory": "256m", "timeout_s": 60},
            "search_space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
            "roles": ["engineer"], "critic": {"seeds": 1}}
    (root / "experiment.yaml").write_text(yaml.safe_dump(spec))
    return root


def run_on_cluster(exp: Path, runs: Path, iterations: int) -> dict[str, Any]:
    """One `labcoat run --cluster auto --parallel 2` in this process; subtasks per minute."""
    from labcoat.log import read_events
    from labcoat.orchestrator.commands import RunOptions, start_run

    opts = RunOptions(model="search", max_iterations=iterations, parallel=2, patience=0,
                      runs_dir=runs, cluster="auto")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = start_run(exp, opts)
    assert code == 0, f"labcoat run exited {code}"
    events = read_events(Path(out.getvalue().splitlines()[0]))
    started = [e.ts for e in events if e.type == "subtask_started"]
    done = {e.subtask_id for e in events if e.type == "subtask_finished"}
    wall = max(e.ts for e in events if e.type == "graded") - min(started)
    nodes = sorted({e.node for e in events if e.type == "sandbox_leased" and e.node})
    return {"subtasks": len(done), "wall_s": round(wall, 2),
            "subtasks_per_min": round(len(done) / wall * 60, 2), "nodes": nodes}


def throughput(cluster: LocalCluster, tmp: Path, iterations: int) -> dict[str, Any]:
    exp = sleepy_experiment(tmp / "sleepy")
    os.environ.update(cluster.env())
    one = run_on_cluster(exp, tmp / "one", iterations)
    cluster.add_node("n2", sandboxes=1, cpus=1)
    two = run_on_cluster(exp, tmp / "two", iterations)
    return {"one_node": one, "two_nodes": two,
            "ratio": round(two["subtasks_per_min"] / one["subtasks_per_min"], 2),
            "goal_ratio_min": 1.8}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="labcoat-bench-") as tmp:
        cluster = LocalCluster()
        try:
            cluster.start(sandboxes=1, cpus=1)
            os.environ.update(cluster.env())
            result = {"micro": asyncio.run(micro(cluster.address, Path(tmp), args.quick))}
            from labcoat.sandboxes.ray.address import disconnect

            disconnect()
            result["throughput"] = throughput(cluster, Path(tmp), 3 if args.quick else 5)
        finally:
            cluster.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
