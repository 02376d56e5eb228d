"""Orchestration overhead per subtask (JSON out).

A trivial experiment (`run: true`, an evaluate that prints a constant metric) runs N engineer
subtasks through the whole loop in-process: plan (Optuna), role sandbox, commit, honest grading
in two fresh sandboxes, log appends with fsync, git. The baseline, measured in the same run,
performs exactly the sandbox work those subtasks need directly on the sandbox API with the same
provider, pool and parallelism, and nothing else. The difference per subtask is what labcoat
itself costs (goal: <= 50 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ITERATIONS = 25
PARALLEL = 2
REPEATS = 2


def make_experiment(root: Path) -> Path:
    (root / "workspace").mkdir(parents=True)
    (root / "grader").mkdir()
    (root / "workspace" / "README").write_text("trivial\n")
    (root / "grader" / "score.json").write_text('{"score": 1}\n')
    spec = {"name": "trivial", "goal": "measure overhead", "run": "true",
            "evaluate": "cat /grader/score.json",
            "metric": {"name": "score", "direction": "maximize"},
            "resources": {"cpus": 0.5, "memory": "256m", "timeout_s": 60},
            "search_space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
            "roles": ["engineer"]}
    (root / "experiment.yaml").write_text(yaml.safe_dump(spec))
    return root


def run_labcoat(exp: Path, runs: Path) -> tuple[float, int, float]:
    """Wall time, graded subtasks, and the steady part: first subtask start to last grade."""
    from labcoat.log import load_state, read_events
    from labcoat.orchestrator.commands import RunOptions, start_run

    opts = RunOptions(max_iterations=ITERATIONS, parallel=PARALLEL, patience=0, runs_dir=runs)
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = start_run(exp, opts)
    elapsed = time.perf_counter() - start
    assert code == 0, f"labcoat run exited {code}"
    run_dir = Path(out.getvalue().splitlines()[0])
    state = load_state(run_dir)
    done = sum(1 for s in state.subtasks.values() if s.status == "finished" and s.metric)
    events = read_events(run_dir)
    first = min(e.ts for e in events if e.type == "subtask_started")
    last = max(e.ts for e in events if e.type == "graded")
    return elapsed, done, last - first


async def raw_subtask(provider: object, exp: object, work: Path, i: int) -> None:
    """The sandbox work of one subtask, nothing else."""
    from labcoat.orchestrator.sandboxing import sandbox_spec
    from labcoat.sandboxes.base import Mount

    spec = sandbox_spec(exp, "bench-raw", f"s{i}")  # type: ignore[arg-type]
    async with await provider.create(spec) as box:  # type: ignore[attr-defined]
        await box.put_dir(work, "/workspace")
        await box.write_file("/workspace/params.json", '{"x": 0.5}\n')
        await box.get_dir("/workspace", work.parent / f"role-{i}")
    async with await provider.create(spec) as box:  # type: ignore[attr-defined]
        await box.put_dir(work, "/workspace")
        await box.exec("true")
        await box.get_dir("/workspace", work.parent / f"run-{i}")
    mounts = (Mount(source=exp.grader_dir, target="/grader"),)  # type: ignore[attr-defined]
    async with await provider.create(spec.model_copy(update={"mounts": mounts})) as box:  # type: ignore[attr-defined]
        await box.put_dir(work, "/workspace")
        await box.exec("cat /grader/score.json")


async def run_raw(exp_dir: Path, n: int, tmp: Path) -> float:
    from labcoat.experiment import load_experiment
    from labcoat.sandboxes.docker import DockerProvider

    exp = load_experiment(exp_dir)
    sem = asyncio.Semaphore(PARALLEL)

    async def one(i: int) -> None:
        async with sem:
            await raw_subtask(provider, exp, exp.workspace_dir, i)

    async with DockerProvider(run_id="bench-raw", pool_size=PARALLEL) as provider:
        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return time.perf_counter() - start


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory(prefix="labcoat-bench-") as tmp:
        exp = make_experiment(Path(tmp) / "trivial")
        for r in range(REPEATS):
            wall, done, steady = run_labcoat(exp, Path(tmp) / f"runs{r}")
            raw = asyncio.run(run_raw(exp, done, Path(tmp)))
            rows.append({"subtasks": done, "labcoat_wall_s": round(wall, 3),
                         "labcoat_steady_s": round(steady, 3),
                         "raw_sandbox_wall_s": round(raw, 3),
                         "overhead_per_subtask_ms": round((wall - raw) / done * 1000, 1),
                         "steady_overhead_per_subtask_ms": round((steady - raw) / done * 1000, 1),
                         "ratio": round(wall / raw, 3)})
    result = {"iterations": ITERATIONS, "parallel": PARALLEL, "runs": rows,
              "median_overhead_per_subtask_ms": statistics.median(
                  r["overhead_per_subtask_ms"] for r in rows),
              "median_steady_overhead_per_subtask_ms": statistics.median(
                  r["steady_overhead_per_subtask_ms"] for r in rows),
              "median_ratio": statistics.median(r["ratio"] for r in rows),
              "goal_overhead_ms": 50,
              "note": "overhead includes one-time start-up (imports of langgraph, optuna, "
                      "matplotlib for the report); steady excludes start-up and the report"}
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
