"""The one event renderer: an event as one line of text, for the timeline and live progress.

`summary(event)` says what happened in a line (no time, no type); `timeline_line(event)` puts
the time, sequence number, iteration and type in front of it. `labcoat log`, the live progress
display and anything else that shows events to a person use these two. Both are inert: control
characters from agent output (escape sequences, carriage returns) come out as visible escapes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from labcoat.log import EventBase
from labcoat.log import events as ev
from labcoat.text import first_line, inert, num
from labcoat.views import steering
from labcoat.views.claims import claim_line


def short(commit: str | None) -> str:
    """A commit as people read it: its first 10 hex digits, `-` for none."""
    return (commit or "-")[:10]


def _n(value: float | None) -> str:
    return num(value, 6, none="-")


def timeline_line(event: EventBase) -> str:
    """`HH:MM:SS  #seq  itN  type  summary` for one event."""
    clock = time.strftime("%H:%M:%S", time.localtime(event.ts))
    return f"{clock}  #{event.seq:<5} it{event.iteration:<3} {event.type:<17} {summary(event)}"


def summary(event: EventBase) -> str:
    """What `event` says, in one line, safe to print (`inert`)."""
    render = _SUMMARIES.get(event.type)
    return inert(render(event)) if render is not None else ""


def _plan(e: ev.PlanProposed) -> str:
    subs = ", ".join(f"{s.get('id')} {s.get('role')}" for s in e.subtasks)
    why = f" | {first_line(e.rationale, 60)}" if e.rationale else ""
    return f"{len(e.subtasks)} subtasks: {subs}{why}{steering.plan_waits(e)}"


def _exec(e: ev.SandboxExec) -> str:
    flags = " TIMEOUT" * e.timed_out + " OOM" * e.oom_killed
    if e.oom_kills:  # the command lived on, but the OOM killer took some of its processes
        flags += f" (warning: {e.oom_kills} child process(es) OOM-killed)"
    return (f"{e.subtask_id or '-'} $ {first_line(e.cmd, 60)} -> {e.returncode}{flags} "
            f"in {e.duration_s:.1f}s")


def _llm(e: ev.LlmCall) -> str:
    tokens = sum(e.usage.values())
    cost = "?" if e.cost_usd is None else f"{e.cost_usd:.4f}"
    return (f"{e.subtask_id or '-'} {e.role} {e.model} {tokens} tokens ${cost}"
            + (" (replayed)" if e.replayed else ""))


def _graded(e: ev.Graded) -> str:
    result = _n(e.metric) if e.ok else f"FAILED {first_line(e.error, 60)}"
    return f"{e.subtask_id} @ {short(e.commit)} seed {e.seed}: {result}"


def _finished(e: ev.SubtaskFinished) -> str:
    change = "" if e.changed else " (no change)"
    if e.changed and e.role == "reproducer":
        change = " (reproduction fix)"
    return f"{e.subtask_id} {e.role} -> {short(e.commit)}{change}: {first_line(e.summary)}"


def _run_started(e: ev.RunStarted) -> str:
    return (f"run {e.run_id}: {e.experiment.get('name', '?')}, brain {e.brain}, seed {e.seed}, "
            f"from {short(e.base_commit)}")


def _run_finished(e: ev.RunFinished) -> str:
    return (f"{first_line(e.reason, 50)}; best {e.best_subtask or '-'} {_n(e.best_metric)} "
            f"@ {short(e.best_commit)}")


def _capacity(e: ev.CapacityNoted) -> str:
    gpus = f", GPUs {','.join(e.gpu_ids)}" if e.gpu_ids else ""
    return (f"{e.cpus:g} CPUs, {e.memory_mb} MB{gpus} ({e.source}): {e.fits} sandbox(es) of "
            f"the spec's size fit at once, parallel {e.parallel}" + (f"; {e.note}" * bool(e.note)))


_SUMMARIES: dict[str, Callable[[Any], str]] = {
    "run_started": _run_started,
    "run_resumed": lambda e: f"by pid {e.pid}" + (f", raised {e.overrides}" * bool(e.overrides)),
    "plan_proposed": _plan,
    "subtask_started": lambda e: f"{e.subtask_id} {e.role} attempt {e.attempt} "
                                 f"from {short(e.base_commit)}",
    "sandbox_exec": _exec,
    "llm_call": _llm,
    "subtask_finished": _finished,
    "subtask_failed": lambda e: f"{e.subtask_id} {e.role} attempt {e.attempt}: "
                                f"{first_line(e.error)}",
    "graded": _graded,
    "critique": lambda e: f"{e.subtask_id} on {e.target}: {e.verdict} "
                          f"{first_line(e.reason, 60)}",
    "iteration_closed": lambda e: f"best {e.best_subtask or '-'} {_n(e.best_metric)}"
                                  f"{' improved' if e.improved else ' no improvement'}",
    "budget_exhausted": lambda e: f"{e.kind}: spent {e.spent:.6g} of {e.limit:.6g}",
    "run_paused": lambda e: first_line(e.reason),
    "run_finished": _run_finished,
    "run_failed": lambda e: first_line(e.error),
    "tool_call": lambda e: f"{e.subtask_id or '-'} {e.tool}"
                           + ("" if e.ok else f" REJECTED {first_line(e.error, 60)}"),
    "llm_error": lambda e: f"{e.role or '-'} {e.model}: {e.error} {first_line(e.message, 60)}",
    "log_repaired": lambda e: f"set aside {e.dropped_bytes} bytes ({e.reason}) "
                              f"in {e.broken_copy}",
    "snapshot_ignored": lambda e: f"{e.snapshot} (seq {e.snapshot_seq}) not used, the log "
                                  f"replayed: {first_line(e.reason, 80)}",
    "capacity": lambda e: _capacity(e),
    **steering.SUMMARIES,
    "claim_checked": lambda e: f"{e.subtask_id} on {e.target} @ {short(e.commit)}: "
                               + claim_line(e),
    "sandbox_leased": lambda e: f"{e.subtask_id or '-'} {e.sandbox} slot {e.slot}"
                                + (f" GPUs {','.join(e.gpu_ids)}" if e.gpu_ids else "")
                                + (f" on {e.node}" if e.node else ""),
    "node_lost": lambda e: f"{e.node} lost ({e.subtask_id or '-'} {e.sandbox}): "
                           f"{first_line(e.reason, 80)}",
}
