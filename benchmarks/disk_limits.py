"""What disk limits (`resources.disk`) cost a sandbox: prints one JSON object.

All figures from the same run, with and without a limit (the baseline: `disk_mb=None`, a plain
folder as before):

* `scratch`: making and removing a sandbox's host folder alone (a sparse ext4 image copied from
  a per-process template and loop-mounted, vs `mkdir`), medians in ms;
* `cold_create`: create + start + connect one sandbox (what a pool miss costs), and the ratio;
* `warm_acquire`: taking a sandbox from the warm pool (where the image set-up is hidden);
* `exec_true`: `exec(["true"])` round trips (the limit adds a look at the disk after each
  command, and one every 0.5 s while it runs), and the ratio.

`mode` says whether this host gives hard limits or the watchdog (`labcoat doctor` says why).

Usage: `.venv/bin/python benchmarks/disk_limits.py [--n 15] [--execs 300]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from labcoat.sandboxes import DockerProvider, SandboxSpec
from labcoat.sandboxes import _container as ctr
from labcoat.sandboxes.disk import hard_limits
from labcoat.sandboxes.image import default_image

LIMIT_MB = 10 * 1024


def ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1e3, 2)


def pair(with_limit: list[float], without: list[float]) -> dict[str, float]:
    return {"limit_ms": ms(with_limit), "no_limit_ms": ms(without),
            "ratio": round(statistics.median(with_limit) / statistics.median(without), 2)}


def scratch_costs(root: Path, n: int) -> dict[str, dict[str, float]]:
    out = {}
    for label, disk_mb in (("limit", LIMIT_MB), ("no_limit", None)):
        make, remove = [], []
        for i in range(n):
            start = time.perf_counter()
            folder = ctr.make_scratch(root, f"{label}-{i}", ("/workspace", "/outputs"), disk_mb)
            made = time.perf_counter()
            ctr.remove_scratch(folder, root)
            make.append(made - start)
            remove.append(time.perf_counter() - made)
        out[label] = {"make_ms": ms(make), "remove_ms": ms(remove)}
    return out


async def timed(make: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await make()
    return time.perf_counter() - start


async def sandbox_costs(root: Path, n: int, execs: int) -> dict[str, dict[str, float]]:
    specs = {label: SandboxSpec(image=default_image(), run_id="bench-disk", memory_mb=256,
                                disk_mb=mb) for label, mb in (("limit", LIMIT_MB), ("none", None))}
    cold: dict[str, list[float]] = {"limit": [], "none": []}
    warm: dict[str, list[float]] = {"limit": [], "none": []}
    runs: dict[str, list[float]] = {"limit": [], "none": []}
    async with DockerProvider("bench-disk", pool_size=1, scratch_root=root) as provider:
        for _ in range(n):
            for label, spec in specs.items():  # interleaved: the machine's load hits both alike
                start = time.perf_counter()
                box = await provider.create_cold(spec)
                cold[label].append(time.perf_counter() - start)
                await box.aclose()
                await provider.warm(spec)
                start = time.perf_counter()
                box = await provider.create(spec)
                warm[label].append(time.perf_counter() - start)
                for _ in range(execs // n):
                    runs[label].append(await timed(lambda b=box: b.exec(["true"])))
                await box.aclose()
    return {"cold_create": pair(cold["limit"], cold["none"]),
            "warm_acquire": pair(warm["limit"], warm["none"]),
            "exec_true": pair(runs["limit"], runs["none"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=15, help="sandboxes (and folders) per variant")
    parser.add_argument("--execs", type=int, default=300, help="`true` round trips per variant")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="labcoat-bench-disk-"))
    result: dict[str, object] = {"benchmark": "disk_limits", "limit_mb": LIMIT_MB,
                                 "mode": "hard" if hard_limits() is None else "watchdog",
                                 "why_not_hard": hard_limits()}
    result["scratch"] = scratch_costs(root, args.n)
    result |= asyncio.run(sandbox_costs(root, args.n, args.execs))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
