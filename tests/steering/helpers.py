"""Runs built through the real Journal for the steering tests that need no Docker, and the
`labcoat` command line as a real process."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from labcoat.agents.role import Subtask
from labcoat.log import Journal

EXPERIMENT = {"name": "toy", "metric": {"name": "score", "direction": "maximize"}}
BASE = "c0" * 20


def start(journal: Journal, **config: Any) -> None:
    journal.append("run_started", config={"max_iterations": 3, "parallel": 2, **config},
                   experiment=EXPERIMENT, experiment_dir="nowhere", experiment_hash="e" * 64,
                   grader_hash="g" * 64, labcoat_version="0.1.0", seed=0, brain="search",
                   base_commit=BASE)


def plan(journal: Journal, it: int, *roles: str, awaiting: bool = False,
         **fields: Any) -> list[str]:
    """Record a plan of `roles` for iteration `it` (all of it waiting when `awaiting`)."""
    first = 1 + sum(1 for s in journal.state.subtasks.values() if s.iteration == it)
    subs = [Subtask(id=f"it{it:03d}-{first + k:02d}", iteration=it, role=role,
                    instructions=f"do {role} things", base_commit=BASE)
            for k, role in enumerate(roles)]
    gate = {"awaiting": [s.id for s in subs], "gate": "plans"} if awaiting else {}
    journal.append("plan_proposed", iteration=it, subtasks=subs, rationale="test",
                   **gate, **fields)
    return [s.id for s in subs]


def make_run(run_dir: Path, *, waiting: bool = True, paused: bool = True) -> list[str]:
    """A run whose iteration-1 plan waits for approval (or not), paused like a timed-out
    run; the waiting subtask ids."""
    with Journal.open(run_dir, "run-steer", create=True) as journal:
        start(journal, approve_plans=waiting)
        ids = plan(journal, 1, "reproducer", "engineer", "engineer", awaiting=waiting)
        if paused:
            journal.append("run_paused", reason="waiting for a person",
                           waiting_for_person=waiting)
    return ids


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
