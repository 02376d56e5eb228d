"""The manager API: what plans a run's work. Both brains implement it.

    plan = await manager.plan(state, iteration)     # the subtasks of a new iteration
    plan = await manager.review(state, iteration)   # critic subtasks for unreviewed leaders

A manager reads the run state (the fold of the log) and nothing else that changes, so a resumed
run plans exactly what it would have planned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from labcoat.agents.role import Subtask
from labcoat.log import RunState


@dataclass(frozen=True)
class Plan:
    """Subtasks in plan order and why."""

    subtasks: list[Subtask]
    rationale: str
    notes: Mapping[int, str] = field(default_factory=dict)
    """How the plan took each of a person's notes into account (note number -> answer)."""


class Manager(Protocol):
    """Plans iterations and reviews; `brain` names it in the log ("search" or "llm")."""

    brain: str

    async def plan(self, state: RunState, iteration: int) -> Plan: ...

    async def review(self, state: RunState, iteration: int) -> Plan: ...
