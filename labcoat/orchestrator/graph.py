"""The research loop as a LangGraph StateGraph: the README's diagram, node for node.

    START ─▶ (where the log says) ─▶ plan ─▶ work* ─▶ worked ─▶ grade* ─▶ graded ─▶ review
                                      ▲                                              │
                                      └──────── decide ◀──── (critics: work* first) ─┘
    decide ─▶ plan | finish ─▶ END;   any step ─▶ pause ─▶ END (time limit mid-iteration)

`work*` and `grade*` fan out with `Send`, one task per subtask, at most `parallel` doing work at
once (a semaphore in the Lab); `worked` and `graded` join them (LangGraph runs a node once per
superstep however many branches lead to it). Every conditional edge asks `routing.next_step`,
a pure function of the log, so the same graph drives a fresh run and a resumed one, and START
enters wherever the log says the run stands. The graph holds no research state.

Why the barrier stays here: in LangGraph's superstep model every `Send` of a superstep finishes
before the next superstep starts, so an iteration's subtasks are graded together. See
docs/architecture.md for how the scheduler replaces it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from labcoat.orchestrator import dispatch, planning, results
from labcoat.orchestrator.lab import Lab
from labcoat.orchestrator.routing import next_step

SUPERSTEPS_PER_ITERATION = 16
"""Generous bound on supersteps per iteration (plan, work, join, grade, join, review, critic
work, join, review, decide): the recursion limit is derived from it."""


class Tick(TypedDict, total=False):
    """The graph's own state: nothing but the subtask a fanned-out task works on."""

    sid: str


Router = Callable[[Tick], Any]


def route(lab: Lab, allowed: tuple[str, ...]) -> Router:
    """A conditional edge: `next_step` as node names (fan-outs as `Send`s), within `allowed`."""

    def edge(_: Tick) -> Any:
        nxt = next_step(lab.state, time_up=lab.time_up())
        name = END if nxt.step == "end" else nxt.step
        if name not in allowed:
            raise RuntimeError(f"the loop cannot go from here to {name!r} (allowed: {allowed})")
        if nxt.step in ("work", "grade"):
            return [Send(nxt.step, {"sid": sid}) for sid in nxt.subtasks]
        return name

    return edge


def nodes(lab: Lab) -> dict[str, Callable[[Tick], Awaitable[Tick]]]:
    """Each step of the loop as a graph node (the step bodies live in planning, dispatch,
    results)."""

    async def plan(_: Tick) -> Tick:
        await planning.plan(lab)
        return {}

    async def work(task: Tick) -> Tick:
        await dispatch.work(lab, task["sid"])
        return {}

    async def grade(task: Tick) -> Tick:
        await results.grade(lab, task["sid"])
        return {}

    async def review(_: Tick) -> Tick:
        await planning.review(lab)
        return {}

    async def decide(_: Tick) -> Tick:
        planning.decide(lab)
        return {}

    async def finish(_: Tick) -> Tick:
        planning.finish(lab)
        return {}

    async def pause(_: Tick) -> Tick:
        planning.pause_for_time(lab)
        return {}

    return {"plan": plan, "work": work, "worked": _join, "grade": grade, "graded": _join,
            "review": review, "decide": decide, "finish": finish, "pause": pause}


def build_graph(lab: Lab) -> Any:
    """Compile the loop for one Lab: the nodes above, wired as the module docstring draws."""
    g = StateGraph(Tick)
    for name, node in nodes(lab).items():
        g.add_node(name, node)  # type: ignore[call-overload]  # langgraph's overloads
    edges: dict[str, tuple[str, ...]] = {
        START: ("plan", "work", "grade", "review", "finish", "pause", END),
        "plan": ("work", "pause", END),
        "worked": ("grade", "review", "work", "pause"),
        "graded": ("review", "grade"),
        "decide": ("plan", "finish", END),
    }
    for source, targets in edges.items():
        g.add_conditional_edges(source, route(lab, targets), list(targets))
    g.add_conditional_edges("review", after_review(lab), ["work", "pause", "decide"])
    for source, target in (("work", "worked"), ("grade", "graded"), ("finish", END),
                           ("pause", END)):
        g.add_edge(source, target)
    return g.compile()


def after_review(lab: Lab) -> Router:
    """Critic subtasks planned by the review are worked first; with none, the iteration ends."""

    def edge(t: Tick) -> Any:
        return route(lab, ("work", "pause"))(t) if lab.state.unfinished() else "decide"

    return edge


async def _join(_: Tick) -> Tick:
    return {}


def recursion_limit(lab: Lab) -> int:
    """Supersteps the remaining iterations may need (LangGraph stops a graph past its limit)."""
    left = int(lab.config.get("max_iterations", 1)) - lab.state.iteration + 1
    return SUPERSTEPS_PER_ITERATION * max(1, left) + 50
