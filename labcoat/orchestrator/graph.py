"""One subtask's pipeline as a LangGraph graph: work, then grade as soon as the work ends.

    START ─▶ work ─▶ grade ─▶ END        (a finished, ungraded result starts at grade;
                └──────────▶ END          a failure or an ungraded role's result ends there)

The scheduler (`labcoat.orchestrator.scheduler`) runs one such graph per subtask in each free
slot. Why not the whole loop as one graph: in LangGraph's superstep model every `Send` of a
superstep finishes before the next superstep starts, which is exactly the iteration barrier
the pipeline removes (docs/architecture.md). Where a graph fits, a subtask's own steps, it is
one; each edge reads the log's fold, so a resumed subtask re-enters at the right step.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Protocol, TypedDict

from langgraph.graph import END, START, StateGraph

from labcoat.orchestrator import dispatch, results
from labcoat.orchestrator.lab import Lab
from labcoat.orchestrator.schedule import needs_grading


class Job(TypedDict):
    """The graph's own state: which subtask it runs."""

    sid: str


class SubtaskGraph(Protocol):
    """A compiled subtask graph (what `subtask_graph` returns)."""

    def ainvoke(self, input: Job) -> Coroutine[Any, Any, Any]: ...


def subtask_graph(lab: Lab) -> SubtaskGraph:
    """Compile the pipeline once per run; invoke it with `{"sid": subtask_id}`."""

    async def work(job: Job) -> Job:
        await dispatch.work(lab, job["sid"])
        return job

    async def grade(job: Job) -> Job:
        await results.grade(lab, job["sid"])
        return job

    def start(job: Job) -> str:
        rec = lab.state.subtasks[job["sid"]]
        if needs_grading(rec):
            return "grade"
        return "work" if rec.status in ("planned", "running") else END

    def after_work(job: Job) -> str:
        return "grade" if needs_grading(lab.state.subtasks[job["sid"]]) else END

    g = StateGraph(Job)
    g.add_node("work", work)  # type: ignore[call-overload]  # langgraph's overloads
    g.add_node("grade", grade)  # type: ignore[call-overload]
    g.add_conditional_edges(START, start, ["work", "grade", END])
    g.add_conditional_edges("work", after_work, ["grade", END])
    g.add_edge("grade", END)
    compiled: SubtaskGraph = g.compile()
    return compiled
