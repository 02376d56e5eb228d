"""The research loop as a LangGraph StateGraph.

    START -> route -> plan ---------------------------------> route
                   -> dispatch: Send("work", subtask) * N ---> join -> route
                   -> grade:    Send("grade", subtask) * N --> join -> route
                   -> review (plans critic subtasks) -------> route | decide
                   -> decide (closes the iteration) -------> route | finish
                   -> out_of_time (time limit mid-iteration: pause) -> END
                   -> END (run finished or paused)

The graph holds no research state: `route` reads the fold of the log and picks the next step,
so the same graph drives a fresh run and a resumed one. At most `parallel` Send tasks do work
at once (a semaphore in the Lab).
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from labcoat.orchestrator.lab import Lab


class Tick(TypedDict, total=False):
    steps: Annotated[int, operator.add]
    sid: str


def build_graph(lab: Lab) -> Any:
    """Compile the loop for one Lab."""

    def route(_: Tick) -> Any:
        return next_step(lab)

    async def plan(_: Tick) -> Tick:
        if not (await lab.plan()).subtasks:
            lab.finish("the manager has nothing left to try")
        return {"steps": 1}

    async def work(task: Tick) -> Tick:
        await lab.work(task["sid"])
        return {"steps": 1}

    async def grade(task: Tick) -> Tick:
        await lab.grade(task["sid"])
        return {"steps": 1}

    async def review(_: Tick) -> Tick:
        await lab.review()
        return {"steps": 1}

    def after_review(_: Tick) -> str:
        return "route" if lab.state.unfinished() else "decide"

    async def decide(_: Tick) -> Tick:
        reason = lab.decide()
        if reason:
            lab.finish(reason)
        return {"steps": 1}

    async def finish(_: Tick) -> Tick:
        lab.finish(lab.stop_reason() or "stopped")
        return {"steps": 1}

    async def out_of_time(_: Tick) -> Tick:
        lab.pause_for_time()
        return {"steps": 1}

    g = StateGraph(Tick)
    for name, fn in [("route", _noop), ("plan", plan), ("work", work), ("grade", grade),
                     ("join", _noop), ("review", review), ("decide", decide),
                     ("finish", finish), ("out_of_time", out_of_time)]:
        g.add_node(name, fn)
    g.add_edge(START, "route")
    g.add_conditional_edges("route", route, ["plan", "work", "grade", "review", "finish",
                                             "out_of_time", END])
    for name in ("plan", "join", "decide", "finish", "out_of_time"):
        g.add_edge(name, "route")
    g.add_edge("work", "join")
    g.add_edge("grade", "join")
    g.add_conditional_edges("review", after_review, ["route", "decide"])
    return g.compile()


async def _noop(_: Tick) -> Tick:
    return {"steps": 1}


def next_step(lab: Lab) -> Any:
    """Where the run stands, from the log alone."""
    st = lab.state
    if st.status in ("finished", "failed", "paused"):
        return END
    current = [s for s in st.subtasks.values() if s.iteration == st.iteration]
    pending = [s for s in current if s.status in ("planned", "running")]
    if pending:
        if lab.time_up():  # mid-iteration: pause, so that a resume does the planned work
            return "out_of_time"
        return [Send("work", {"sid": s.id}) for s in pending]
    ungraded = [s for s in current if lab.needs_grading(s)]
    if ungraded:
        return [Send("grade", {"sid": s.id}) for s in ungraded]
    if st.iteration == 0 or any(c.iteration == st.iteration for c in st.closed):
        return "finish" if lab.stop_reason() else "plan"
    return "review"
