"""Build realistic runs through the real Journal (no fakes of our own code)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from labcoat.agents.role import Subtask
from labcoat.log import Journal

EXPERIMENT = {"name": "demo", "metric": {"name": "acc", "direction": "maximize"}}


def start(journal: Journal, **overrides: Any) -> None:
    fields: dict[str, Any] = dict(
        config={"max_iterations": 3, "budget_usd": 1.0}, experiment=EXPERIMENT,
        experiment_dir="experiments/demo", experiment_hash="e" * 64, grader_hash="g" * 64,
        labcoat_version="0.1.0", seed=0, brain="search", base_commit="c0")
    fields.update(overrides)
    journal.append("run_started", **fields)


def iteration(journal: Journal, it: int, rng: random.Random, roles: tuple[str, ...] = (
        "engineer", "engineer")) -> list[str]:
    """Plan, run, grade and close one iteration; returns the subtask ids."""
    subs = [Subtask(id=f"it{it:03d}-{k:02d}", iteration=it, role=role, instructions="try",
                    base_commit="c0", params={"lr": rng.random()}, seed=0)
            for k, role in enumerate(roles, 1)]
    plan = journal.append("plan_proposed", iteration=it, subtasks=subs, rationale="why not")
    for sub in subs:
        run_subtask(journal, sub.id, sub.role, plan.id, rng)
    best = journal.state.best
    journal.append("iteration_closed", best_subtask=best and best.subtask,
                   best_metric=best and best.metric, improved=rng.random() < 0.5)
    return [s.id for s in subs]


def run_subtask(journal: Journal, sid: str, role: str, parent: str, rng: random.Random) -> None:
    started = journal.append("subtask_started", parent=parent, subtask_id=sid, role=role,
                             attempt=1, base_commit="c0")
    journal.append("llm_call", parent=started.id, role=role, subtask_id=sid, model="m:x",
                   request_hash=f"h-{sid}", response={"text": "ok é ✓"},
                   usage={"input_tokens": 10, "output_tokens": 5}, cost_usd=0.01,
                   duration_s=0.1)
    journal.append("sandbox_exec", parent=started.id, subtask_id=sid, cmd="python train.py",
                   returncode=0, duration_s=0.5, stdout_tail="loss 0.1\n" * rng.randint(1, 5))
    commit = f"{rng.getrandbits(160):040x}"
    journal.append("subtask_finished", parent=started.id, subtask_id=sid, role=role,
                   attempt=1, commit=commit, summary="done", changed=True)
    metric = round(rng.random(), 4)
    journal.append("graded", parent=started.id, subtask_id=sid, commit=commit, seed=0,
                   metrics={"acc": metric}, metric=metric, duration_s=1.0)


def make_run(run_dir: Path, iterations: int = 3, seed: int = 0) -> Path:
    rng = random.Random(seed)
    with Journal.open(run_dir, "run-test", create=True) as journal:
        start(journal)
        for it in range(1, iterations + 1):
            iteration(journal, it, rng)
        best = journal.state.best
        journal.append("run_finished", reason="max_iterations", best_subtask=best.subtask,
                       best_commit=best.commit, best_metric=best.metric)
    return run_dir / "log.jsonl"
