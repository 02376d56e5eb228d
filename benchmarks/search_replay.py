"""Search replay: the search brain against random search on many seeds, offline (JSON out).

`benchmarks/research_quality.py` runs each brain for real (sandboxes, grader) over 3 seeds:
too few to tell two brains apart, too slow for more. This replays the same runs outside the
sandboxes: for each seed, a real log (the Journal, in a temporary folder) and the real
`SearchManager` plan iteration by iteration exactly as `labcoat run --max-iterations 3
--parallel 2 --pipeline-depth 1` with roles reproducer and engineer would (a reproducer and 2
trials, then 2 trials a plan, each plan made from the log as the previous iteration closed),
and each trial is graded by an objective in this process instead of a sandbox:

- `digits`: experiments/digits itself: its train.py's model for the trial's params and the
  run's seed, scored on the grader's held-out labels like its evaluate.py, in one container of
  the sandbox image per batch (its scikit-learn; each distinct trial fitted once, cached);
- `needle`: one categorical branch holds a high, narrow hill; the others low, wide ones; every
  branch is dead at one end of the log-scale parameter;
- `bowl`: a smooth optimum that may lie near an edge, with categorical offsets (minimised);
- `cliff`: a "speedup" that grows towards one corner and drops to 0 (or a failed trial) past a
  quality boundary, as in experiments/cpu-lm-speedup;
- `zoo`: a random landscape on a random space (1-4 numeric parameters of every type, 0-2
  categorical ones): effects of very different sizes, some monotone, sometimes a choice that
  moves another parameter's optimum, sometimes a dead zone.
- `ladder`: a zoo landscape plus 1-2 parameters given as lists of numbers (powers of two, as
  batch sizes and widths are), each with a smooth effect along its choices.

The synthetic objectives are families: each seed draws its own instance (which branch is good,
where the optimum lies), the same for both brains. Each run's improvement is its best graded
metric minus its baseline (the reproducer's grade), as in research_quality.py. Per objective:
the median and mean improvement of each brain, how often search beats random seed by seed,
and over every triple of seeds how often the search brain's median beats random search's
(what research_quality.py would conclude on 3 seeds); ties count half.

    .venv/bin/python benchmarks/search_replay.py [--seeds 60] [--only digits] [--cache FILE]
        [--runs] [--reference]

`--reference` adds random search with twice the trials (3 batches of 4) against random search:
the scale of what a better search can hope for (its "search" figures are the doubled budget's).

digits needs Docker and the sandbox image (a few minutes the first time; `--cache` keeps the
grades between invocations); the synthetic objectives run in seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labcoat.agents.search import SearchManager  # noqa: E402
from labcoat.experiment import Experiment, ExperimentSpec, load_experiment  # noqa: E402
from labcoat.log import Journal  # noqa: E402
from labcoat.orchestrator.schedule import planning_view  # noqa: E402

ITERATIONS, PARALLEL = 3, 2  # research_quality.py's
BRAINS = ("search", "random")
ROLES = ["reproducer", "engineer"]
Job = tuple[dict[str, Any] | None, int]
"""A trial's params (None: the baseline, the workspace as given) and the run's seed."""


class Objective(Protocol):
    name: str

    def experiment(self, seed: int, root: Path) -> Experiment: ...

    def grade(self, jobs: Sequence[Job]) -> list[float | None]: ...


DIGITS_WORKER = r'''
import importlib.util, json, sys, warnings
from concurrent.futures import ProcessPoolExecutor
import numpy as np
warnings.simplefilter("ignore")
spec = importlib.util.spec_from_file_location("train", "/workspace/train.py")
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)
data = dict(np.load("/workspace/data/train.npz"))  # read now: forks share no zip handle
test = dict(np.load("/workspace/data/test_features.npz"))
labels = np.load("/grader/test_labels.npy")

def grade(job):
    params, seed = job
    try:
        model = train.build({**train.DEFAULTS, **params}, seed).fit(data["X"], data["y"])
    except Exception:
        return None
    return round(float((model.predict(test["X"]).astype(int) == labels).mean()), 6)

with ProcessPoolExecutor(2) as pool:
    print(json.dumps(list(pool.map(grade, json.load(sys.stdin), chunksize=4))))
'''


class Digits:
    """experiments/digits graded as its grader would, in the sandbox image (cached)."""

    name = "digits"

    def __init__(self, cache: Path | None) -> None:
        self.exp = load_experiment(ROOT / "experiments" / "digits")
        self.cache_path = cache
        self.cache: dict[str, float | None] = (
            json.loads(cache.read_text()) if cache and cache.exists() else {})

    def experiment(self, seed: int, root: Path) -> Experiment:
        return self.exp

    def grade(self, jobs: Sequence[Job]) -> list[float | None]:
        keys = [json.dumps([p or {}, seed], sort_keys=True) for p, seed in jobs]
        todo = sorted({k for k in keys if k not in self.cache})
        if todo:
            self.cache.update(zip(todo, self._run([json.loads(k) for k in todo]), strict=True))
            if self.cache_path:
                self.cache_path.write_text(json.dumps(self.cache))
        return [self.cache[k] for k in keys]

    def _run(self, jobs: list[Any]) -> list[float | None]:
        from labcoat.orchestrator.sandboxing import image_of

        mounts = [f"{self.exp.workspace_dir}:/workspace:ro", f"{self.exp.grader_dir}:/grader:ro"]
        cmd = ["docker", "run", "--rm", "-i", "--network", "none", "--cpus", "2",
               *itertools.chain.from_iterable(("-v", m) for m in mounts),
               image_of(self.exp), "python3", "-c", DIGITS_WORKER]
        out = subprocess.run(cmd, input=json.dumps(jobs), capture_output=True, text=True,
                             check=False)
        if out.returncode != 0:
            raise SystemExit(f"grading digits failed (exit {out.returncode}):\n{out.stderr}")
        return list(json.loads(out.stdout.strip().splitlines()[-1]))


Params = dict[str, Any]


@dataclass(frozen=True)
class Instance:
    """One objective of a family: its search space, its function and its baseline's params."""

    space: dict[str, dict[str, Any]]
    f: Callable[[Params], float | None]
    default: Params


Family = Callable[[random.Random], Instance]


class Synthetic:
    """A family of objectives; each run's seed draws its own instance (both brains the same)."""

    def __init__(self, name: str, direction: str, family: Family) -> None:
        self.name, self.direction, self.family = name, direction, family
        self.defaults = False
        """Whether the spec declares the baseline's values (each parameter's `default`)."""

    def instance(self, seed: int) -> Instance:
        return self.family(random.Random(f"{self.name}:{seed}"))

    def experiment(self, seed: int, root: Path) -> Experiment:
        spec = ExperimentSpec.model_validate({
            "name": self.name, "goal": "replay", "run": "true", "evaluate": "true",
            "roles": ROLES, "metric": {"name": "score", "direction": self.direction},
            "search_space": self.space(seed)})
        return Experiment(spec=spec, dir=root, spec_path=root / "experiment.yaml")

    def space(self, seed: int) -> dict[str, dict[str, Any]]:
        inst = self.instance(seed)
        if not self.defaults:
            return inst.space
        return {k: {**p, "default": inst.default[k]} for k, p in inst.space.items()}

    def grade(self, jobs: Sequence[Job]) -> list[float | None]:
        out = []
        for params, seed in jobs:
            inst = self.instance(seed)
            out.append(inst.f(params or inst.default))
        return out


def to_unit(p: dict[str, Any], value: float) -> float:
    """A numeric value as a fraction of its parameter's range (log_float on its log scale)."""
    low, high = float(p["low"]), float(p["high"])
    if p["type"] == "log_float":
        return math.log(value / low) / math.log(high / low)
    return (value - low) / (high - low)


def from_unit(p: dict[str, Any], u: float) -> float | int:
    if p["type"] == "log_float":
        return float(p["low"] * (p["high"] / p["low"]) ** u)
    value = p["low"] + u * (p["high"] - p["low"])
    return round(value) if p["type"] == "int" else float(value)


SYNTH_SPACE: dict[str, dict[str, Any]] = {
    "kind": {"type": "categorical", "choices": ["a", "b", "c", "d"]},
    "lr": {"type": "log_float", "low": 1e-5, "high": 1e-1},
    "width": {"type": "int", "low": 8, "high": 512},
    "drop": {"type": "float", "low": 0.0, "high": 0.5},
}
NUMERIC = ("lr", "width", "drop")
KINDS = "abcd"


def unit(params: Params) -> list[float]:
    """The numeric params of SYNTH_SPACE as fractions of their ranges."""
    return [to_unit(SYNTH_SPACE[n], params[n]) for n in NUMERIC]


def default_point(rng: random.Random, kind: str | None = None) -> Params:
    """A baseline: a mid-range configuration, as a person would write first."""
    return {"kind": kind or rng.choice(KINDS),
            **{n: from_unit(SYNTH_SPACE[n], rng.uniform(0.3, 0.7)) for n in NUMERIC}}


def needle(rng: random.Random) -> Instance:
    """Each branch (`kind`) is a hill over lr and one other parameter; the good branch's is
    twice as high and a third as wide, and every branch is dead (0.1) at one end of lr."""
    good = rng.choice(KINDS)
    hills = {k: (1.0 if k == good else rng.uniform(0.55, 0.8),
                 [rng.uniform(0.15, 0.85) for _ in NUMERIC], 0.12 if k == good else 0.35,
                 (0, rng.choice((1, 2)))) for k in KINDS}
    dead, side = rng.uniform(0.1, 0.3), rng.choice((-1, 1))

    def f(p: Params) -> float:
        u = unit(p)
        if (u[0] if side < 0 else 1 - u[0]) < dead:
            return 0.1
        top, centre, width, dims = hills[p["kind"]]
        bump = math.exp(-sum(((u[i] - centre[i]) / width) ** 2 for i in dims) / 2)
        return round(0.3 + (top - 0.3) * bump, 6)
    return Instance(SYNTH_SPACE, f, default_point(rng, rng.choice(KINDS.replace(good, ""))))


def bowl(rng: random.Random) -> Instance:
    """A smooth loss (minimised): a quadratic bowl whose centre may lie near an edge, weighted
    per parameter, plus an offset per branch."""
    centre = [rng.uniform(0.0, 1.0) for _ in NUMERIC]
    weights = [rng.uniform(0.5, 2.0) for _ in NUMERIC]
    offsets = {k: rng.uniform(0.0, 0.15) for k in KINDS}

    def f(p: Params) -> float:
        loss = sum(w * (a - c) ** 2 for a, c, w in zip(unit(p), centre, weights, strict=True))
        return round(loss + offsets[p["kind"]], 6)
    return Instance(SYNTH_SPACE, f, default_point(rng))


def cliff(rng: random.Random) -> Instance:
    """A speedup over the baseline that grows towards one corner; past a quality boundary it
    is 0 (missed the target), further on the trial fails, as in experiments/cpu-lm-speedup."""
    signs = [rng.choice((-1, 1)) for _ in NUMERIC]
    speed_w = [rng.uniform(0.5, 1.5) for _ in NUMERIC]
    risk_w = [w * rng.uniform(0.5, 1.5) for w in speed_w]
    gains = {k: rng.uniform(0.8, 1.6) for k in KINDS}
    risky = {k: rng.uniform(-0.2, 0.2) for k in KINDS}
    default = default_point(rng)

    def toward(p: Params) -> list[float]:
        return [a if s > 0 else 1 - a for a, s in zip(unit(p), signs, strict=True)]

    def risk(p: Params) -> float:
        return sum(w * a for w, a in zip(risk_w, toward(p), strict=True)) + risky[p["kind"]]

    def speed(p: Params) -> float:
        exponent = sum(w * a for w, a in zip(speed_w, toward(p), strict=True)) / sum(speed_w)
        return gains[p["kind"]] * 2 ** (2 * exponent)

    edge = risk(default) + rng.uniform(0.1, 0.5) * sum(risk_w)  # the baseline meets the target

    def f(p: Params) -> float | None:
        if risk(p) > edge + 0.3 * sum(risk_w):
            return None
        return 0.0 if risk(p) > edge else round(speed(p) / speed(default), 6)
    return Instance(SYNTH_SPACE, f, default)


def zoo(rng: random.Random) -> Instance:
    """A random landscape on a random space: 1-4 numeric parameters (float, log_float, int) and
    0-2 categorical ones; a weighted bowl per numeric parameter (centres up to beyond an edge:
    some effects are monotone; weights spread over orders of magnitude: few parameters
    matter), a main effect per categorical choice, sometimes a choice that moves a numeric
    parameter's optimum, sometimes a dead zone at one end of a range."""
    space: dict[str, dict[str, Any]] = {}
    for i in range(rng.randint(1, 4)):
        kind = rng.choice(("float", "log_float", "int"))
        low = {"float": 0.0, "log_float": 1e-4, "int": 1}[kind]
        high = {"float": 1.0, "log_float": 10.0, "int": rng.choice((8, 64, 500))}[kind]
        space[f"x{i}"] = {"type": kind, "low": low, "high": high}
    for i in range(rng.randint(0, 2)):
        space[f"c{i}"] = {"type": "categorical",
                          "choices": [f"v{j}" for j in range(rng.randint(2, 5))]}
    nums = [n for n, p in space.items() if p["type"] != "categorical"]
    cats = [n for n in space if n not in nums]
    centre = {n: rng.uniform(-0.3, 1.3) for n in nums}
    weight = {n: math.exp(rng.gauss(0, 1.2)) for n in nums}
    effect = {(c, v): rng.gauss(0, 0.3) for c in cats for v in space[c]["choices"]}
    moved = {}
    if cats and rng.random() < 0.5:
        c, n = rng.choice(cats), rng.choice(nums)
        moved = {(c, v, n): rng.uniform(-0.5, 0.5) for v in space[c]["choices"]}
    dead = (rng.choice(nums), rng.uniform(0.1, 0.3), rng.choice((-1, 1))) \
        if rng.random() < 0.3 else None

    def f(p: Params) -> float:
        u = {n: to_unit(space[n], p[n]) for n in nums}
        if dead and (u[dead[0]] if dead[2] < 0 else 1 - u[dead[0]]) < dead[1]:
            return -10.0
        shift = {n: sum(d for (c, v, m), d in moved.items() if m == n and p[c] == v)
                 for n in nums}
        value = -sum(weight[n] * (u[n] - centre[n] - shift[n]) ** 2 for n in nums)
        return round(value + sum(effect[(c, p[c])] for c in cats), 6)
    default = {n: from_unit(space[n], rng.uniform(0.25, 0.75)) for n in nums}
    default.update({c: space[c]["choices"][0] for c in cats})
    return Instance(space, f, default)


def ladder(rng: random.Random) -> Instance:
    """A zoo landscape plus 1-2 parameters given as lists of numbers (batch sizes, widths: 3-6
    powers of two), each a weighted bowl over its choices' places on a log scale like a numeric
    parameter's (centres up to beyond either end), the baseline at one of its middle choices."""
    inner = zoo(rng)
    space, rungs = dict(inner.space), {}
    for i in range(rng.randint(1, 2)):
        start = rng.randint(0, 5)
        choices = [2 ** k for k in range(start, start + rng.randint(3, 6))]
        space[f"n{i}"] = {"type": "categorical", "choices": choices}
        rungs[f"n{i}"] = (choices, rng.uniform(-0.3, 1.3), math.exp(rng.gauss(0, 1.2)))
    default = dict(inner.default)
    default.update({n: rng.choice(c[1:-1]) for n, (c, _, _) in rungs.items()})

    def f(p: Params) -> float | None:
        value = inner.f({k: v for k, v in p.items() if k not in rungs})
        if value is None:
            return None
        place = {n: math.log(p[n] / c[0]) / math.log(c[-1] / c[0])
                 for n, (c, _, _) in rungs.items()}
        return round(value - sum(w * (place[n] - centre) ** 2
                                 for n, (_, centre, w) in rungs.items()), 6)
    return Instance(space, f, default)


class Replay:
    """One run's log and manager, planned and graded iteration by iteration."""

    def __init__(self, exp: Experiment, brain: str, seed: int, folder: Path,
                 parallel: int = PARALLEL) -> None:
        self.seed = seed
        self.journal = Journal.open(folder, f"replay-{brain}-{seed}", create=True)
        self.journal.append(
            "run_started", config={"max_iterations": ITERATIONS, "parallel": parallel,
                                   "patience": 0, "pipeline_depth": 1},
            experiment=exp.spec.model_dump(mode="json"), experiment_dir=str(exp.dir),
            experiment_hash="e" * 64, grader_hash="g" * 64, labcoat_version="replay",
            seed=seed, brain=brain, base_commit="0" * 40)
        self.manager = SearchManager(exp, ROLES, parallel=parallel,
                                     sampler="random" if brain == "random" else "search")

    def plan(self, iteration: int) -> list[Job]:
        view = planning_view(self.journal.state, iteration, 1)
        self.planned = asyncio.run(self.manager.plan(view, iteration)).subtasks
        self.journal.append("plan_proposed", iteration=iteration, subtasks=self.planned,
                            rationale="replay")
        return [(dict(s.params) if s.role == "engineer" else None, self.seed)
                for s in self.planned]

    def record(self, grades: Sequence[float | None]) -> None:
        j = self.journal
        for sub, value in zip(self.planned, grades, strict=True):
            commit = f"{sub.id:0<40}"
            j.append("subtask_started", subtask_id=sub.id, role=sub.role, attempt=1,
                     base_commit="0" * 40)
            j.append("subtask_finished", subtask_id=sub.id, role=sub.role, tree="t" * 40,
                     commit=commit)
            j.append("graded", subtask_id=sub.id, commit=commit, seed=self.seed,
                     metrics={} if value is None else {"score": value}, metric=value,
                     ok=value is not None)
        best = j.state.best
        j.append("iteration_closed", best_subtask=best and best.subtask,
                 best_metric=best and best.metric)

    def improvement(self) -> float:
        state = self.journal.state
        sign = 1.0 if state.direction == "maximize" else -1.0
        assert state.best is not None and state.baseline is not None
        return round(sign * (state.best.metric - state.baseline), 6)


def replay(obj: Objective, brain: str, seeds: Sequence[int], root: Path,
           parallel: int = PARALLEL) -> list[float]:
    """Every seed's run, in lockstep (one grading batch per iteration), as improvements."""
    runs = [Replay(obj.experiment(seed, root), brain, seed,
                   root / f"{obj.name}-{brain}-{parallel}-{seed}", parallel) for seed in seeds]
    for iteration in range(1, ITERATIONS + 1):
        plans = [r.plan(iteration) for r in runs]
        grades = iter(obj.grade([job for jobs in plans for job in jobs]))
        for run, jobs in zip(runs, plans, strict=True):
            run.record([next(grades) for _ in jobs])
    out = [r.improvement() for r in runs]
    for r in runs:
        r.journal.close()
    return out


def triples(pairs: list[tuple[float, float]]) -> Iterator[tuple[tuple[float, float], ...]]:
    """Every triple of seeds, or 100,000 drawn at random (seeded) when there are more."""
    if math.comb(len(pairs), 3) <= 100_000:
        yield from itertools.combinations(pairs, 3)
        return
    rng = random.Random(0)
    for _ in range(100_000):
        yield tuple(rng.sample(pairs, 3))


def compare(search: Sequence[float], rand: Sequence[float]) -> dict[str, Any]:
    """Medians, means, per-seed wins and the 3-seed verdict over every triple of seeds (ties
    count half: two brains that both find nothing on most seeds tie)."""
    pairs = list(zip(search, rand, strict=True))
    verdicts = [_beats(statistics.median(p[0] for p in t), statistics.median(p[1] for p in t))
                for t in triples(pairs)]
    med_s, med_r = statistics.median(search), statistics.median(rand)
    return {"median_search": round(med_s, 6), "median_random": round(med_r, 6),
            "ratio_of_medians": round(med_s / med_r, 3) if med_r > 0 else None,
            "mean_search": round(statistics.fmean(search), 6),
            "mean_random": round(statistics.fmean(rand), 6),
            "seed_win_rate": round(statistics.fmean(_beats(s, r) for s, r in pairs), 3),
            "triple_win_rate": round(statistics.fmean(verdicts), 3),
            "triples_tied": round(verdicts.count(0.5) / len(verdicts), 3)}


def _beats(search: float, rand: float) -> float:
    return 1.0 if search > rand else 0.5 if search == rand else 0.0


def objectives(names: Sequence[str] | None, cache: Path | None) -> list[Objective]:
    every: list[Objective] = [Digits(cache), Synthetic("needle", "maximize", needle),
                              Synthetic("bowl", "minimize", bowl),
                              Synthetic("cliff", "maximize", cliff),
                              Synthetic("zoo", "maximize", zoo),
                              Synthetic("ladder", "maximize", ladder)]
    return [o for o in every if not names or o.name in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=60)
    parser.add_argument("--only", action="append",
                        help="digits, needle, bowl, cliff, zoo or ladder")
    parser.add_argument("--cache", type=Path, help="a JSON file keeping digits' grades")
    parser.add_argument("--runs", action="store_true", help="every run's improvement too")
    parser.add_argument("--reference", action="store_true",
                        help="also random search with twice the trials against random search")
    parser.add_argument("--defaults", action="store_true",
                        help="the synthetic spaces declare the baseline's values (`default`)")
    args = parser.parse_args()
    seeds = range(args.seeds)
    results = []
    with tempfile.TemporaryDirectory(prefix="labcoat-replay-") as tmp:
        for obj in objectives(args.only, args.cache):
            if isinstance(obj, Synthetic):
                obj.defaults = args.defaults
            got = {b: replay(obj, b, seeds, Path(tmp)) for b in BRAINS}
            results.append({"objective": obj.name, **compare(got["search"], got["random"]),
                            **({"runs": got} if args.runs else {})})
            if args.reference:  # what doubling random search's budget buys, for scale
                twice = replay(obj, "random", seeds, Path(tmp), 2 * PARALLEL)
                results[-1]["random_x2_vs_random"] = compare(twice, got["random"])
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    json.dump({"iterations": ITERATIONS, "parallel": PARALLEL, "seeds": args.seeds,
               "objectives": results}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
