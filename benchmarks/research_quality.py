"""Research quality: the search brain against random search on the bundled experiments (JSON out).

For each bundled experiment that makes no claims (reproduce-paper checks claims; it has no
search to compare), both brains run `labcoat run EXP --max-iterations 3 --parallel 2` over the
same seeds, in the same invocation, with patience 0, so each makes the same number of engineer
trials (checked). Both run with `--pipeline-depth 1` (each plan sees every earlier result: the
benchmark measures the proposals, not the pipeline) and without the critic (roles: reproducer,
engineer; the critic re-grades leaders and changes no proposal), on a copy of the experiment.
A run's improvement is its best graded metric minus its baseline (the reproducer's grade in
that run), signed so that better is positive; the figures are the medians over the seeds and
the ratio of the two medians. The search brain must beat random search: random is the floor
every brain (an LLM's too) has to clear. For cpu-lm-speedup it also checks the issue's line:
every search-brain run ends above 1.3x at the target loss.

    .venv/bin/python benchmarks/research_quality.py [--seeds 3] [--only cpu-lm-speedup]

Heavy: real sandboxes, real training; about an hour on 2 cores. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LABCOAT = str(Path(sys.executable).with_name("labcoat"))
BRAINS = ("search", "random")
ITERATIONS = 3
PARALLEL = 2


def bundled() -> list[Path]:
    """The experiments under experiments/ that make no claims."""
    from labcoat.experiment import load_experiment

    return [d for d in sorted((ROOT / "experiments").iterdir())
            if (d / "experiment.yaml").exists() and not load_experiment(d).spec.claims]


def run_once(exp: Path, brain: str, seed: int, runs: Path) -> dict[str, object]:
    """One `labcoat run`; its baseline, best, improvement and trial count from its log."""
    from labcoat.log import load_state

    start = time.perf_counter()
    proc = subprocess.run([LABCOAT, "run", str(exp), "--model", brain, "--seed", str(seed),
                           "--max-iterations", str(ITERATIONS), "--parallel", str(PARALLEL),
                           "--patience", "0", "--pipeline-depth", "1", "--runs-dir", str(runs)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{exp.name} {brain} seed {seed}: exit {proc.returncode}\n{proc.stderr}")
    state = load_state(Path(proc.stdout.strip().splitlines()[0]))
    sign = 1.0 if state.direction == "maximize" else -1.0
    best = state.best.metric if state.best else None
    base = state.baseline
    if best is None or base is None:
        raise SystemExit(f"{exp.name} {brain} seed {seed}: no baseline or no result")
    trials = sum(1 for s in state.subtasks.values() if s.role == "engineer")
    winner = state.subtasks[state.best.subtask].own_grade if state.best else None
    return {"brain": brain, "seed": seed, "baseline": base, "best": best,
            "best_metrics": winner.metrics if winner else {},
            "improvement": round(sign * (best - base), 6),
            "relative": round(sign * (best - base) / abs(base), 6) if base else None,
            "trials": trials, "wall_s": round(time.perf_counter() - start, 1)}


def summarise(name: str, runs: list[dict[str, object]]) -> dict[str, object]:
    """Medians per brain, their ratio, and whether the search brain beat random search."""
    med = {b: statistics.median(float(str(r["improvement"])) for r in runs if r["brain"] == b)
           for b in BRAINS}
    trials = {b: sorted({int(str(r["trials"])) for r in runs if r["brain"] == b}) for b in BRAINS}
    ratio = med["search"] / med["random"] if med["random"] > 0 else None
    return {"experiment": name, "runs": runs, "trials": trials,
            "median_improvement_search": round(med["search"], 6),
            "median_improvement_random": round(med["random"], 6),
            "ratio_search_to_random": round(ratio, 3) if ratio is not None else None,
            "search_beats_random": med["search"] > med["random"]}


def without_critic(exp: Path, root: Path) -> Path:
    """A copy of the experiment whose `roles` leave out the critic."""
    import yaml

    copy = root / exp.name
    shutil.copytree(exp, copy)
    spec = yaml.safe_load((copy / "experiment.yaml").read_text())
    spec["roles"] = ["reproducer", "engineer"]
    (copy / "experiment.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return copy


def acceptance(summary: dict[str, object]) -> dict[str, object]:
    """cpu-lm-speedup's line of issue 15: every search-brain run above 1.3x at the target."""
    runs = [r for r in summary["runs"] if r["brain"] == "search"]  # type: ignore[attr-defined]
    ok = all(float(r["best"]) > 1.3 and r["best_metrics"].get("loss", 99.0)
             <= r["best_metrics"].get("target_loss", 0.0) for r in runs)
    return {"search_speedup_above_1_3_at_target_loss": ok}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", action="append", help="an experiment's folder name")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="labcoat-quality-") as tmp:
        for exp in bundled():
            if args.only and exp.name not in args.only:
                continue
            copy = without_critic(exp, Path(tmp))
            runs = [run_once(copy, brain, seed, Path(tmp) / f"{exp.name}-{brain}-{seed}")
                    for seed in range(args.seeds) for brain in BRAINS]
            results.append(summarise(exp.name, runs))
            if exp.name == "cpu-lm-speedup":
                results[-1].update(acceptance(results[-1]))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    out = {"iterations": ITERATIONS, "parallel": PARALLEL, "seeds": args.seeds,
           "experiments": results,
           "search_beats_random_everywhere": all(r["search_beats_random"] for r in results)}
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
