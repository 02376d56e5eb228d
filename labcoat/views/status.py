"""`labcoat status`: the fold of a run's log (no lock, no repair), as text or as JSON.

Stdlib + pydantic only, so the command starts fast. `print_status(run_dir, as_json)` prints
the state, iteration, subtasks, best, baseline, cost and budget.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from labcoat.errors import ConfigError
from labcoat.log import RunState, SubtaskState, TornTail, fold, log_path, read_log
from labcoat.log.event_base import EventBase
from labcoat.log.reproduction import as_data
from labcoat.log.work_events import SandboxLeased
from labcoat.text import inert, num
from labcoat.views import claims, steering
from labcoat.views.render import short


def require_run(run_dir: Path) -> Path:
    """The log of `run_dir`; `ConfigError` (bad input, exit 2) when it is not a run directory.
    Every verb that takes RUN_DIR (status, log, report, resume) says it the same way."""
    path = log_path(run_dir)
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no log.jsonl); fix: pass the "
                          "folder `labcoat run` printed, e.g. runs/<run-id>")
    return path


def print_status(run_dir: Path, as_json: bool = False) -> None:
    """Print a run's summary: text for people, or JSON (`as_json`) for programs."""
    require_run(run_dir)
    contents = read_log(run_dir)
    state = fold(contents.events)
    nodes = nodes_of(contents.events)
    if as_json:
        data = {"run_dir": str(run_dir), "log": str(contents.path),
                "events": len(contents.events), "torn_tail": _torn_dict(contents.torn),
                "nodes": nodes,
                **state.to_dict(), **as_data(state)}
        print(json.dumps(_finite(data), indent=2, default=str))
    else:
        print(inert("\n".join(status_lines(state, contents.path, len(contents.events),
                                           contents.torn, nodes))))


def _torn_dict(torn: TornTail | None) -> dict[str, Any] | None:
    if torn is None:
        return None
    return {"line": torn.line, "bytes": torn.dropped_bytes, "reason": torn.reason}


def _finite(value: object) -> object:
    """JSON has no NaN/Infinity: those become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _num(value: float | None) -> str:
    return num(value, 6, none="-")


def status_lines(state: RunState, log: Path, count: int, torn: TornTail | None,
                 nodes: Mapping[str, str] | None = None) -> list[str]:
    """The text of `labcoat status` (`nodes`: the cluster node of each subtask, see `nodes_of`)."""
    lines = [
        f"run       {state.run_id or '?'}  {state.status}"
        + (f" ({state.stop_reason})" if state.stop_reason else ""),
        f"log       {log}  ({count} events, {_age(state.last_ts)})",
        f"brain     {state.brain or '-'}  seed {state.seed}  iteration {state.iteration}",
        _metric_line(state),
        _cost_line(state),
        *claims.status_lines(state),
    ]
    lines += steering.status_lines(state)
    if state.budget is not None:
        b = state.budget
        lines.append(f"budget    {b.kind} exhausted: spent {b.spent:.6g} of {b.limit:.6g}")
    if torn is not None:
        lines.append(f"warning   line {torn.line}: {torn.reason}; the next `labcoat resume` "
                     "sets it aside")
    return [*lines, "", *_subtask_table(state, nodes or {})]


def _age(ts: float | None) -> str:
    if ts is None:
        return "empty"
    return "last " + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _metric_line(state: RunState) -> str:
    best = state.best
    best_text = "-" if best is None else f"{_num(best.metric)} ({best.subtask} @ " \
        f"{short(best.commit)})"
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


def nodes_of(events: Iterable[EventBase]) -> dict[str, str]:
    """The cluster node that ran each subtask (its own sandbox's, else its grading's; the last
    attempt's), from `sandbox_leased.node`; empty for a run on one machine."""
    nodes: dict[str, str] = {}
    for e in events:
        if isinstance(e, SandboxLeased) and e.node and e.subtask_id and (
                e.sandbox == e.subtask_id or e.subtask_id not in nodes):
            nodes[e.subtask_id] = e.node
    return nodes


def _subtask_table(state: RunState, nodes: Mapping[str, str]) -> list[str]:
    if not state.subtasks:
        return ["no subtasks yet"]
    rows: list[tuple[str, ...]] = [
        ("subtask", "role", "status", "try", "metric", "verdict", "commit")]
    rows += [_subtask_row(s) for s in state.subtasks.values()]
    if nodes:  # a column only for runs on a cluster
        rows = [(*rows[0], "node"), *((*r, nodes.get(s.id, "-"))
                                      for r, s in zip(rows[1:], state.subtasks.values(),
                                                      strict=True))]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in rows]


def _subtask_row(s: SubtaskState) -> tuple[str, str, str, str, str, str, str]:
    metric = _num(s.metric)
    others = len(s.grades) - (s.own_grade is not None)
    if others:
        metric += f" (+{others} seeds)"
    return (s.id, s.role, s.status, str(s.attempts), metric, s.verdict or "-", short(s.commit))
