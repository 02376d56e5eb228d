"""Live progress: a rich panel on a TTY (iteration, running subtasks, best so far, elapsed), plain
lines otherwise. It only listens to log events, so it shows exactly what the log records; the
lines come from the one event renderer (`labcoat.views.render`)."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from labcoat.log import EventBase
from labcoat.text import inert
from labcoat.views.render import summary

SHOWN = frozenset({
    "plan_proposed", "subtask_started", "subtask_finished", "subtask_failed", "graded",
    "critique", "iteration_closed", "run_finished", "run_paused", "run_failed",
    "budget_exhausted", "log_repaired",
})
"""Events worth a line of their own in plain output (model and sandbox calls are not)."""


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

    def on_event(self, event: EventBase) -> None:
        self._count(event)
        if self._live is not None:
            self._live.update(self._render())
        elif event.type in SHOWN:
            print(f"[{self._elapsed()}] {event.type}: {summary(event)}", file=self.stream,
                  flush=True)

    def set_best(self, subtask_id: str | None, metric: float | None) -> None:
        best = (subtask_id, metric) if subtask_id and metric is not None else None
        if best != self.best:
            self.best = best
            if self._live is not None:
                self._live.update(self._render())

    def _count(self, event: EventBase) -> None:
        sid = getattr(event, "subtask_id", None)
        if event.type == "plan_proposed":
            self.iteration = event.iteration
        elif event.type == "subtask_started" and sid:
            self.running[sid] = str(getattr(event, "role", ""))
        elif event.type in ("subtask_finished", "subtask_failed") and sid:
            self.running.pop(sid, None)
            self.done += event.type == "subtask_finished"
            self.failed += event.type == "subtask_failed"

    def _elapsed(self) -> str:
        s = int(time.monotonic() - self.start)
        return f"{s // 60:02d}:{s % 60:02d}"

    def _render(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        table = Table.grid(padding=(0, 2))
        total = f"/{self.max_iterations}" if self.max_iterations else ""
        best = (f"{self.best[1]:.4g} ({self.best[0]})" if self.best else "-")
        running = ", ".join(f"{k} {v}" for k, v in sorted(self.running.items())) or "-"
        rows = [("iteration", f"{self.iteration}{total}", "elapsed", self._elapsed()),
                ("best " + self.metric, best, "done/failed", f"{self.done}/{self.failed}"),
                ("running", running, "", "")]
        for row in rows:  # Text, not str: rich would read `[red]...` in a name as markup
            table.add_row(*(Text(inert(cell)) for cell in row))
        return table
