"""Live progress: a rich panel on a TTY (iteration, running subtasks, best so far, elapsed), plain
lines otherwise. It only listens to log events, so it shows exactly what the log records."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    """Fed every appended event; renders a summary. Use as a context manager."""

    def __init__(self, *, metric: str, stream: TextIO | None = None, live: bool | None = None,
                 max_iterations: int | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live_enabled = self.stream.isatty() if live is None else live
        self.metric = metric
        self.max_iterations = max_iterations
        self.start = time.monotonic()
        self.iteration = 0
        self.running: dict[str, str] = {}
        self.done = 0
        self.failed = 0
        self.best: tuple[str, float] | None = None
        self._live: Any = None

    def __enter__(self) -> Progress:
        if self.live_enabled:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self._render(), console=Console(file=self.stream),
                              refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(None, None, None)
            self._live = None

    def on_event(self, event: Any) -> None:
        line = self._apply(event)
        if self._live is not None:
            self._live.update(self._render())
        elif line:
            print(f"[{self._elapsed()}] {line}", file=self.stream, flush=True)

    def set_best(self, subtask_id: str | None, metric: float | None) -> None:
        best = (subtask_id, metric) if subtask_id and metric is not None else None
        if best != self.best:
            self.best = best
            if self._live is not None:
                self._live.update(self._render())

    def _apply(self, ev: Any) -> str | None:
        kind = ev.type
        if kind == "plan_proposed":
            self.iteration = ev.iteration
            roles = ", ".join(f"{s['id']} {s['role']}" for s in ev.subtasks)
            return f"iteration {ev.iteration}: planned {roles}"
        if kind == "subtask_started":
            self.running[ev.subtask_id] = ev.role
            return f"{ev.subtask_id} {ev.role} started (attempt {ev.attempt})"
        if kind in ("subtask_finished", "subtask_failed"):
            self.running.pop(ev.subtask_id, None)
            return self._finished(ev)
        if kind == "graded":
            shown = f"{ev.metric:.4g}" if ev.metric is not None else f"failed: {ev.error}"
            return f"{ev.subtask_id} graded (seed {ev.seed}): {self.metric} {shown}"
        if kind == "critique":
            return f"{ev.target} reviewed: {ev.verdict.replace('_', ' ')} ({ev.reason})"
        if kind in ("iteration_closed", "run_finished", "run_paused", "run_failed",
                    "budget_exhausted", "log_repaired"):
            return _describe(ev)
        return None

    def _finished(self, ev: Any) -> str:
        if ev.type == "subtask_failed":
            self.failed += 1
            return f"{ev.subtask_id} {ev.role} FAILED: {ev.error[:300]}"
        self.done += 1
        return f"{ev.subtask_id} {ev.role} finished: {ev.summary[:200]}"

    def _elapsed(self) -> str:
        s = int(time.monotonic() - self.start)
        return f"{s // 60:02d}:{s % 60:02d}"

    def _render(self) -> Any:
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        total = f"/{self.max_iterations}" if self.max_iterations else ""
        best = (f"{self.best[1]:.4g} ({self.best[0]})" if self.best else "-")
        table.add_row("iteration", f"{self.iteration}{total}", "elapsed", self._elapsed())
        table.add_row("best " + self.metric, best, "done/failed", f"{self.done}/{self.failed}")
        running = ", ".join(f"{k} {v}" for k, v in sorted(self.running.items())) or "-"
        table.add_row("running", running, "", "")
        return table


def _describe(ev: Any) -> str:
    if ev.type == "iteration_closed":
        best = f"{ev.best_metric:.4g} ({ev.best_subtask})" if ev.best_metric is not None else "-"
        return f"iteration {ev.iteration} closed: best {best}{' (improved)' if ev.improved else ''}"
    if ev.type == "run_finished":
        return f"run finished: {ev.reason}"
    if ev.type == "run_paused":
        return f"run paused: {ev.reason}"
    if ev.type == "run_failed":
        return f"run failed: {ev.error}"
    if ev.type == "budget_exhausted":
        return f"budget exhausted: {ev.kind} {ev.spent:.4g} of {ev.limit:.4g}"
    return f"log repaired: {ev.reason} (copy at {ev.broken_copy})"
