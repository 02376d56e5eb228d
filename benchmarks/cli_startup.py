"""Whole-process start-up time of the CLI verbs people type most (JSON out).

Each command runs as a fresh process, 15 times; medians and p90 in milliseconds, and the ratio
to the floor (`python -c pass` with the same interpreter), all measured in this run. The run
directory for `status` and `log` is a real log of 200 events written with the journal.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPEATS = 15
LABCOAT = str(Path(sys.executable).with_name("labcoat"))


def make_run(root: Path) -> Path:
    from labcoat.log import Journal

    run_dir = root / "run"
    run_dir.mkdir()
    with Journal.open(run_dir, "bench-run", create=True) as j:
        j.append("run_started", iteration=0, config={"parallel": 2}, experiment={
            "name": "bench", "metric": {"name": "score", "direction": "maximize"}},
            experiment_dir=str(root), experiment_hash="x", grader_hash="y",
            labcoat_version="0", seed=0, brain="search", base_commit="0" * 40)
        for i in range(1, 50):
            sid = f"it{i:03d}-01"
            j.append("plan_proposed", iteration=i, rationale="bench", subtasks=[{
                "id": sid, "iteration": i, "role": "engineer", "instructions": "x",
                "base_commit": "0" * 40, "params": {"x": i}, "seed": 0}])
            j.append("subtask_started", iteration=i, subtask_id=sid, role="engineer",
                     attempt=1, base_commit="0" * 40)
            j.append("subtask_finished", iteration=i, subtask_id=sid, role="engineer",
                     tree="1" * 40, summary="set x")
            j.append("graded", iteration=i, subtask_id=sid, commit=f"{i:040d}", seed=0,
                     metrics={"score": i / 100}, metric=i / 100)
    return run_dir


def timed(cmd: list[str]) -> list[float]:
    out = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(samples: list[float], floor: float) -> dict[str, float]:
    med = statistics.median(samples)
    p90 = sorted(samples)[int(0.9 * (len(samples) - 1))]
    return {"median_ms": round(med, 1), "p90_ms": round(p90, 1),
            "ratio_to_python_floor": round(med / floor, 2)}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = make_run(Path(tmp))
        floor = statistics.median(timed([sys.executable, "-c", "pass"]))
        commands = {"labcoat --help": [LABCOAT, "--help"],
                    "labcoat status": [LABCOAT, "status", str(run_dir)],
                    "labcoat status --json": [LABCOAT, "status", str(run_dir), "--json"],
                    "labcoat log": [LABCOAT, "log", str(run_dir)]}
        result = {"python_floor_ms": round(floor, 1), "repeats": REPEATS, "goal_ms": 400,
                  "commands": {name: summary(timed(cmd), floor)
                               for name, cmd in commands.items()}}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
