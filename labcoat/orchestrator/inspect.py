"""`labcoat status` and `labcoat log`: read a run's log (no lock, no repair) and print it.

Stdlib + pydantic only, so both commands start fast. `print_status(run_dir, as_json)`
prints the fold of the log (state, iteration, subtasks, best, baseline, cost, budget);
`print_timeline(run_dir, follow)` prints one line per event and, with `follow`, keeps
printing new ones until the run is finished, failed or paused (or Ctrl-C).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labcoat.orchestrator import events as ev
from labcoat.orchestrator.logfile import LogReader, TornTail, read_log
from labcoat.orchestrator.state import RunState, SubtaskState, fold

POLL_S = 0.25
_TERMINAL = frozenset({"run_finished", "run_failed", "run_paused"})


def print_status(run_dir: Path, as_json: bool = False) -> None:
    """Print a run's summary: text for people, or JSON (`as_json`) for programs."""
    contents = read_log(run_dir)
    state = fold(contents.events)
    if as_json:
        data = {"run_dir": str(run_dir), "log": str(contents.path),
                "events": len(contents.events), "torn_tail": _torn_dict(contents.torn),
                **state.to_dict()}
        print(json.dumps(_finite(data), indent=2, default=str))
    else:
        print("\n".join(status_lines(state, contents.path, len(contents.events),
                                     contents.torn)))


def _torn_dict(torn: TornTail | None) -> dict[str, Any] | None:
    if torn is None:
        return None
    return {"line": torn.line, "bytes": torn.dropped_bytes, "reason": torn.reason}


def _finite(value: Any) -> Any:
    """JSON has no NaN/Infinity: those become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _short(commit: str | None) -> str:
    return (commit or "-")[:10]


def status_lines(state: RunState, log: Path, count: int, torn: TornTail | None) -> list[str]:
    """The text of `labcoat status`."""
    lines = [
        f"run       {state.run_id or '?'}  {state.status}"
        + (f" ({state.stop_reason})" if state.stop_reason else ""),
        f"log       {log}  ({count} events, {_age(state.last_ts)})",
        f"brain     {state.brain or '-'}  seed {state.seed}  iteration {state.iteration}",
        _metric_line(state),
        _cost_line(state),
    ]
    if state.budget is not None:
        b = state.budget
        lines.append(f"budget    {b.kind} exhausted: spent {b.spent:.6g} of {b.limit:.6g}")
    if torn is not None:
        lines.append(f"warning   line {torn.line}: {torn.reason}; the next `labcoat resume` "
                     "sets it aside")
    return [*lines, "", *_subtask_table(state)]


def _age(ts: float | None) -> str:
    if ts is None:
        return "empty"
    return "last " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _metric_line(state: RunState) -> str:
    best = state.best
    best_text = "-" if best is None else f"{_num(best.metric)} ({best.subtask} @ " \
        f"{_short(best.commit)})"
    return (f"metric    {state.metric_name or '?'} ({state.direction})  "
            f"baseline {_num(state.baseline)}  best {best_text}")


def _cost_line(state: RunState) -> str:
    total = state.cost.total
    unknown = f" + {total.unknown_cost_calls} calls of unknown price" \
        if total.unknown_cost_calls else ""
    roles = ", ".join(f"{role} ${s.usd:.4f}" + (f" +{s.unknown_cost_calls} unknown"
                                                 if s.unknown_cost_calls else "")
                      for role, s in sorted(state.cost.by_role.items()))
    return (f"cost      ${total.usd:.4f}{unknown}  {total.tokens} tokens  {total.calls} calls"
            + (f"  ({roles})" if roles else ""))


def _subtask_table(state: RunState) -> list[str]:
    if not state.subtasks:
        return ["no subtasks yet"]
    rows = [("subtask", "role", "status", "try", "metric", "verdict", "commit")]
    rows += [_subtask_row(s) for s in state.subtasks.values()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


def _subtask_row(s: SubtaskState) -> tuple[str, ...]:
    metric = _num(s.metric)
    others = len(s.grades) - (s.own_grade is not None)
    if others:
        metric += f" (+{others} seeds)"
    return (s.id, s.role, s.status, str(s.attempts), metric, s.verdict or "-", _short(s.commit))


# --- the timeline ----------------------------------------------------------------------------

def print_timeline(run_dir: Path, follow: bool = False) -> None:
    """Print every event as one line; with `follow`, keep printing until the run stops."""
    reader = LogReader(run_dir)
    if not reader.path.exists():
        read_log(run_dir)  # raises the standard "no such log" error
    with contextlib.suppress(KeyboardInterrupt):
        _follow(reader, follow)


def _follow(reader: LogReader, follow: bool) -> None:
    while True:
        batch = reader.poll()
        for event in batch:
            print(timeline_line(event), flush=follow)
        done = any(e.type in _TERMINAL for e in batch)
        if not follow or done:
            break
        time.sleep(POLL_S)
    if reader.torn is not None:
        print(f"(line {reader.torn.line}: {reader.torn.reason}; the next `labcoat resume` "
              "sets it aside)", file=sys.stderr)


def timeline_line(event: ev.EventBase) -> str:
    """`HH:MM:SS  #seq  itN  type  summary` for one event."""
    clock = time.strftime("%H:%M:%S", time.localtime(event.ts))
    summary = _SUMMARIES.get(event.type, lambda e: "")(event)
    return f"{clock}  #{event.seq:<5} it{event.iteration:<3} {event.type:<17} {summary}"


def _first(text: str | None, limit: int = 90) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _plan(e: Any) -> str:
    subs = ", ".join(f"{s.get('id')} {s.get('role')}" for s in e.subtasks)
    return f"{len(e.subtasks)} subtasks: {subs}" + (f" | {_first(e.rationale, 60)}"
                                                    if e.rationale else "")


def _exec(e: Any) -> str:
    flags = " TIMEOUT" * e.timed_out + " OOM" * e.oom_killed
    return (f"{e.subtask_id or '-'} $ {_first(e.cmd, 60)} -> {e.returncode}{flags} "
            f"in {e.duration_s:.1f}s")


def _llm(e: Any) -> str:
    tokens = sum(e.usage.values())
    cost = "?" if e.cost_usd is None else f"{e.cost_usd:.4f}"
    return (f"{e.subtask_id or '-'} {e.role} {e.model} {tokens} tokens ${cost}"
            + (" (replayed)" if e.replayed else ""))


def _graded(e: Any) -> str:
    result = _num(e.metric) if e.ok else f"FAILED {_first(e.error, 60)}"
    return f"{e.subtask_id} @ {_short(e.commit)} seed {e.seed}: {result}"


_SUMMARIES: dict[str, Callable[[Any], str]] = {
    "run_started": lambda e: f"run {e.run_id}: {e.experiment.get('name', '?')}, brain "
                             f"{e.brain}, seed {e.seed}, from {_short(e.base_commit)}",
    "run_resumed": lambda e: f"by pid {e.pid}" + (f", raised {e.overrides}" * bool(e.overrides)),
    "plan_proposed": _plan,
    "subtask_started": lambda e: f"{e.subtask_id} {e.role} attempt {e.attempt} "
                                 f"from {_short(e.base_commit)}",
    "sandbox_exec": _exec,
    "llm_call": _llm,
    "subtask_finished": lambda e: f"{e.subtask_id} {e.role} -> {_short(e.commit)}"
                                  f"{'' if e.changed else ' (no change)'}: {_first(e.summary)}",
    "subtask_failed": lambda e: f"{e.subtask_id} {e.role} attempt {e.attempt}: "
                                f"{_first(e.error)}",
    "graded": _graded,
    "critique": lambda e: f"{e.subtask_id} on {e.target}: {e.verdict} {_first(e.reason, 60)}",
    "iteration_closed": lambda e: f"best {e.best_subtask or '-'} {_num(e.best_metric)}"
                                  f"{' improved' if e.improved else ' no improvement'}",
    "budget_exhausted": lambda e: f"{e.kind}: spent {e.spent:.6g} of {e.limit:.6g}",
    "run_paused": lambda e: _first(e.reason),
    "run_finished": lambda e: f"{_first(e.reason, 50)}; best {e.best_subtask or '-'} "
                              f"{_num(e.best_metric)} @ {_short(e.best_commit)}",
    "run_failed": lambda e: _first(e.error),
    "tool_call": lambda e: f"{e.subtask_id or '-'} {e.tool}"
                           + ("" if e.ok else f" REJECTED {_first(e.error, 60)}"),
    "llm_error": lambda e: f"{e.role or '-'} {e.model}: {e.error} {_first(e.message, 60)}",
    "log_repaired": lambda e: f"set aside {e.dropped_bytes} bytes ({e.reason}) "
                              f"in {e.broken_copy}",
}
