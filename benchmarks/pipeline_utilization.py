"""How well the scheduler uses the machine (JSON out): the iteration barrier vs the pipeline.

An experiment whose `run` takes a log-normal time (mean about 2 s, coefficient of variation
about 0.6; each trial's duration comes from a hash of its parameter, so the two modes draw from
the same distribution) runs 40 engineer subtasks at `--parallel 4`, once with
`--pipeline-depth 1` (the barrier labcoat 0.1 had: an iteration starts when the previous one has
closed) and once with the default pipeline, in the same process. For each: slot utilization
(busy slot-seconds / (slots x wall time), a slot being busy from a subtask's start to its
grade), subtasks per hour, and framework overhead per subtask (the pipeline's wall time minus
that of doing the same sandbox work directly on the sandbox API, at the same parallelism and
with the same durations, divided by the subtasks).

    .venv/bin/python benchmarks/pipeline_utilization.py [--repeats 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SUBTASKS, PARALLEL = 40, 4
RUN = '''
import hashlib, json, math, pathlib, statistics, time
u = float(json.loads(pathlib.Path("params.json").read_text())["u"])
h = int.from_bytes(hashlib.sha256(repr(u).encode()).digest()[:8], "big") / 2**64
cv, mean = 0.6, 2.0
s = math.sqrt(math.log(1 + cv * cv))
z = statistics.NormalDist().inv_cdf(min(max(h, 1e-6), 1 - 1e-6))
d = math.exp(math.log(mean) - s * s / 2 + s * z)
time.sleep(d)
pathlib.Path("outputs").mkdir(exist_ok=True)
pathlib.Path("outputs/d.txt").write_text(repr(d))
'''


def make_experiment(root: Path) -> Path:
    (root / "workspace").mkdir(parents=True)
    (root / "grader").mkdir()
    (root / "workspace" / "run.py").write_text(RUN)
    (root / "grader" / "score.py").write_text('print(\'{"score": 1.0}\')\n')
    spec = {"name": "jitter", "goal": "measure slot utilization", "run": "python3 run.py",
            "evaluate": "python3 /grader/score.py",
            "metric": {"name": "score", "direction": "maximize"},
            "resources": {"cpus": 0.25, "memory": "256m", "timeout_s": 60},
            "search_space": {"u": {"type": "float", "low": 0.0, "high": 1.0}},
            "roles": ["engineer"]}
    (root / "experiment.yaml").write_text(yaml.safe_dump(spec))
    return root


def run_mode(exp: Path, runs: Path, depth: int) -> dict[str, Any]:
    from labcoat.log import read_events
    from labcoat.orchestrator.commands import RunOptions, start_run

    opts = RunOptions(max_iterations=SUBTASKS // PARALLEL, parallel=PARALLEL, patience=0,
                      runs_dir=runs, pipeline_depth=depth)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = start_run(exp, opts)
    assert code == 0, f"labcoat run exited {code}"
    events = read_events(Path(out.getvalue().splitlines()[0]))
    return measure(events)


def measure(events: list[Any]) -> dict[str, Any]:
    """Utilization, throughput and the run's command durations, from the log alone."""
    started = {e.subtask_id: e.ts for e in events if e.type == "subtask_started"}
    graded = {e.subtask_id: e.ts for e in events if e.type == "graded"}
    done = [sid for sid in started if sid in graded]
    first, last = min(started.values()), max(graded.values())
    wall = last - first
    busy = sum(graded[sid] - started[sid] for sid in done)
    runs = [e.duration_s for e in events
            if e.type == "sandbox_exec" and e.cmd.startswith("[run]")]
    return {"subtasks": len(done), "wall_s": round(wall, 3), "busy_slot_s": round(busy, 3),
            "slot_utilization": round(busy / (PARALLEL * wall), 3),
            "subtasks_per_hour": round(len(done) / wall * 3600, 1),
            "sum_run_s": round(sum(runs), 3), "durations": runs}


async def raw_subtask(provider: Any, exp: Any, work: Path, duration: float, i: int) -> None:
    """The sandbox work of one subtask done directly (role, run, evaluate), nothing else."""
    from labcoat.orchestrator.sandboxing import sandbox_spec
    from labcoat.sandboxes.base import Mount

    spec = sandbox_spec(exp, "bench-raw", f"s{i}")
    async with await provider.create(spec) as box:
        await box.put_dir(work, "/workspace")
        await box.write_file("/workspace/params.json", '{"u": 0.5}\n')
        await box.get_dir("/workspace", work.parent / f"role-{i}")
    async with await provider.create(spec) as box:
        await box.put_dir(work, "/workspace")
        await box.exec(f"sleep {duration:.3f}")
        await box.get_dir("/workspace", work.parent / f"run-{i}")
    mounts = (Mount(source=exp.grader_dir, target="/grader"),)
    async with await provider.create(spec.model_copy(update={"mounts": mounts})) as box:
        await box.put_dir(work, "/workspace")
        await box.exec("python3 /grader/score.py")


async def run_raw(exp_dir: Path, durations: list[float]) -> float:
    from labcoat.experiment import load_experiment
    from labcoat.sandboxes.docker import DockerProvider

    exp = load_experiment(exp_dir)
    slots = asyncio.Semaphore(PARALLEL)

    async def one(i: int, d: float) -> None:
        async with slots:
            await raw_subtask(provider, exp, exp.workspace_dir, d, i)

    async with DockerProvider(run_id="bench-raw", pool_size=PARALLEL) as provider:
        start = time.perf_counter()
        await asyncio.gather(*(one(i, d) for i, d in enumerate(durations)))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    modes: dict[str, list[dict[str, Any]]] = {"barrier": [], "pipeline": []}
    with tempfile.TemporaryDirectory(prefix="labcoat-bench-") as tmp:
        exp = make_experiment(Path(tmp) / "jitter")
        for r in range(args.repeats):
            for name, depth in (("barrier", 1), ("pipeline", 2)):
                row = run_mode(exp, Path(tmp) / f"{name}{r}", depth)
                raw = asyncio.run(run_raw(exp, row.pop("durations")))
                row["raw_wall_s"] = round(raw, 3)
                row["overhead_per_subtask_ms"] = round((row["wall_s"] - raw)
                                                       / row["subtasks"] * 1000, 1)
                modes[name].append(row)
    print(json.dumps(summary(modes), indent=2))


def summary(modes: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    med = {name: {key: statistics.median(r[key] for r in rows)
                  for key in ("slot_utilization", "subtasks_per_hour", "overhead_per_subtask_ms")}
           for name, rows in modes.items()}
    return {"subtasks": SUBTASKS, "parallel": PARALLEL, "runs": modes, "median": med,
            "throughput_ratio_pipeline_vs_barrier": round(
                med["pipeline"]["subtasks_per_hour"] / med["barrier"]["subtasks_per_hour"], 3),
            "goals": {"pipeline_slot_utilization": ">= 0.85", "throughput_ratio": ">= 1.3",
                      "overhead_per_subtask_ms": "<= 20 (steady state)"},
            "barrier": "--pipeline-depth 1, measured in the same run"}


if __name__ == "__main__":
    main()
