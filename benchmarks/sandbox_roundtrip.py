"""Sandbox round-trip benchmark: prints one JSON object.

All figures come from the same run on the same engine:

* `exec_true`: labcoat's `exec(["true"])` through the persistent channel vs the docker SDK's
  `exec_run(["true"])` on the same container, and their ratio (goal <= 0.05);
* `throughput`: `true` commands per second with 1, 4 and 8 sandboxes driven in parallel;
* `acquire`: a warm-pool acquisition vs a cold create + start (goal <= 0.1);
* `teardown`: forced removal of a running sandbox;
* `big_output`: a command printing `--output-gb` GB, and how much labcoat's peak RSS grew;
* `read_file`: files of 8, 32 and 100 MiB read back whole, from /workspace (the host folder behind
  it, through O_NOFOLLOW descriptors) and from /tmp (through the exec channel): medians, MB/s,
  and linearity (seconds per MiB at 100 MiB over seconds per MiB at 8 MiB; 1.0 is linear;
  goal: 100 MiB in <= 2 s).

Usage: `.venv/bin/python benchmarks/sandbox_roundtrip.py [--quick]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from labcoat.sandboxes import DockerProvider, SandboxSpec
from labcoat.sandboxes.image import default_image


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered) * 1e3, 3),
            "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1e3, 3), "n": len(ordered)}


async def timed(coro: Any) -> float:
    start = time.perf_counter()
    await coro
    return time.perf_counter() - start


async def exec_true(provider: DockerProvider, spec: SandboxSpec, n: int, raw_n: int) -> dict:
    async with await provider.create_cold(spec) as box:
        for _ in range(20):  # warm-up
            await box.exec(["true"])
        ours = [await timed(box.exec(["true"])) for _ in range(n)]
        shell = [await timed(box.exec("true")) for _ in range(n)]
        container = provider.client.containers.get(box.id)
        raw = [await timed(asyncio.to_thread(container.exec_run, ["true"])) for _ in range(raw_n)]
    labcoat, sdk = summary(ours), summary(raw)
    return {"labcoat": labcoat, "labcoat_bash_c": summary(shell), "docker_sdk_exec_run": sdk,
            "ratio_median": round(labcoat["median_ms"] / sdk["median_ms"], 4)}


async def throughput(provider: DockerProvider, spec: SandboxSpec, count: int, seconds: float,
                     ) -> dict:
    boxes = await asyncio.gather(*(provider.create_cold(spec) for _ in range(count)))
    done = [0] * count
    stop = time.perf_counter() + seconds

    async def drive(i: int) -> None:
        while time.perf_counter() < stop:
            await boxes[i].exec(["true"])
            done[i] += 1

    await asyncio.gather(*(drive(i) for i in range(count)))
    await asyncio.gather(*(b.aclose() for b in boxes))
    return {"sandboxes": count, "execs_per_s": round(sum(done) / seconds, 1)}


async def acquire(spec: SandboxSpec, run_id: str, n: int) -> dict:
    async with DockerProvider(run_id, pool_size=n) as pooled:
        cold, teardown = [], []
        for _ in range(n):
            start = time.perf_counter()
            box = await pooled.create_cold(spec)
            cold.append(time.perf_counter() - start)
            teardown.append(await timed(box.aclose()))
        await pooled.warm(spec)
        warm = []
        for _ in range(n):
            start = time.perf_counter()
            box = await pooled.create(spec)
            warm.append(time.perf_counter() - start)
            await box.aclose()
            await pooled.warm(spec)
    w, c = summary(warm), summary(cold)
    return {"acquire": {"warm_pool": w, "cold_create_start": c,
                        "ratio_median": round(w["median_ms"] / c["median_ms"], 5)},
            "teardown": summary(teardown)}


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


async def big_output(provider: DockerProvider, spec: SandboxSpec, gb: float) -> dict:
    async with await provider.create_cold(spec) as box:
        Path("/proc/self/clear_refs").write_text("5")
        before = status_kb("VmRSS")
        start = time.perf_counter()
        res = await box.exec(f"head -c {int(gb * 1e9)} /dev/zero", timeout_s=1800)
        took = time.perf_counter() - start
        grown = (status_kb("VmHWM") - before) / 1024
    return {"bytes": int(gb * 1e9), "seconds": round(took, 2), "truncated": res.truncated,
            "kept_chars": len(res.stdout), "host_peak_rss_growth_mb": round(grown, 1)}


READ_SIZES_MIB = (8, 32, 100)


async def read_file(provider: DockerProvider, spec: SandboxSpec, reps: int) -> dict:
    roomy = spec.model_copy(update={"tmpfs_mb": 256, "memory_mb": 1024})
    out: dict[str, Any] = {}
    async with await provider.create_cold(roomy) as box:
        for where in ("/workspace", "/tmp"):
            rows = {}
            for mib in READ_SIZES_MIB:
                path = f"{where}/read-{mib}.bin"
                await box.exec(f"head -c {mib << 20} /dev/urandom > {path}", timeout_s=300)
                times = [await timed(box.read_file(path, max_bytes=128 << 20))
                         for _ in range(reps)]
                await box.exec(f"rm -f {path}")
                med = statistics.median(times)
                rows[f"{mib}_mib"] = {"median_s": round(med, 3),
                                      "mb_per_s": round(mib * 1.048576 / med, 1)}
            per_mib = [rows[f"{m}_mib"]["median_s"] / m for m in (READ_SIZES_MIB[0], 100)]
            rows["linearity_100_vs_8"] = round(per_mib[1] / per_mib[0], 2)
            out[where] = rows
    return out


async def main(args: argparse.Namespace) -> dict:
    run_id = f"bench-sandbox-{os.getpid()}"
    spec = SandboxSpec(image=default_image(), run_id=run_id, memory_mb=512, cpus=1.0)
    out: dict[str, Any] = {"engine": "docker", "image": spec.image}
    async with DockerProvider(run_id) as provider:
        out["exec_true"] = await exec_true(provider, spec, args.n, args.raw_n)
        out["throughput"] = [await throughput(provider, spec, k, args.seconds) for k in (1, 4, 8)]
        out.update(await acquire(spec, run_id + "-pool", args.pool_n))
        out["big_output"] = await big_output(provider, spec, args.output_gb)
        out["read_file"] = await read_file(provider, spec, args.read_reps)
    return out


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="labcoat execs to time")
    parser.add_argument("--raw-n", type=int, default=40, help="docker SDK exec_run calls to time")
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput point")
    parser.add_argument("--pool-n", type=int, default=5, help="cold and warm acquisitions")
    parser.add_argument("--output-gb", type=float, default=5.0, help="size of the big output")
    parser.add_argument("--read-reps", type=int, default=5, help="reads timed per file size")
    parser.add_argument("--quick", action="store_true", help="small numbers, for a smoke test")
    args = parser.parse_args()
    if args.quick:
        args.n, args.raw_n, args.seconds, args.pool_n, args.output_gb = 50, 10, 1.0, 3, 0.2
        args.read_reps = 2
    return args


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(parse())), indent=2))
