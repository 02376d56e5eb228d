"""What `labcoat view` was pointed at: one run directory, or a folder of them.

    catalog = Catalog(Path("runs"))
    catalog.names()          # run directory names, as found on disk
    catalog.index("2026...") # that run's RunIndex (None for a name that is not a run here)
    catalog.problem()        # why there is nothing to show (no folder, no runs), or None

A run is a directory holding `log.jsonl`. Names come from the directory listing, never from a
URL: a request can only pick one of them, so it can never name a path of its own.
"""

from __future__ import annotations

import threading
from pathlib import Path

from labcoat.log import LOG_NAME
from labcoat.views.web.index import READ_BUDGET_S, RunIndex, stale


class Catalog:
    """The runs under `target` (a runs folder, or a single run directory), indexed lazily."""

    def __init__(self, target: Path) -> None:
        self.target = target.expanduser().absolute()
        self.single = (self.target / LOG_NAME).is_file()
        """True when `target` is a run directory itself."""
        self._indexes: dict[str, RunIndex] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        """Run directory names, sorted (newest last: run ids start with their start time)."""
        if self.single:
            return [self.target.name]
        try:
            found = [p.name for p in self.target.iterdir() if (p / LOG_NAME).is_file()]
        except OSError:
            return []
        return sorted(found)

    def run_dir(self, name: str) -> Path | None:
        """The directory of the run called `name`, when it is one of `names()`."""
        if name not in self.names():
            return None
        return self.target if self.single else self.target / name

    def index(self, name: str, budget_s: float | None = READ_BUDGET_S) -> RunIndex | None:
        """The run's index, refreshed: it reads what was appended since the last time, for at
        most `budget_s` seconds (None: to the end of the log)."""
        run_dir = self.run_dir(name)
        if run_dir is None:
            return None
        with self._lock:
            index = self._indexes.get(name)
            if index is None or stale(index):
                index = self._indexes[name] = RunIndex(run_dir)
        index.refresh(budget_s)
        if index.behind:
            index.catch_up()
        return index

    def problem(self) -> str | None:
        """Why the folder shows no run, said so that a person knows what to do; None if any."""
        where = self.target
        if not where.exists():
            return (f"There is no folder {where}. Runs go to ./runs by default: start one with "
                    "`labcoat run EXPERIMENT_DIR`, or point `labcoat view` at your --runs-dir.")
        if not where.is_dir():
            return f"{where} is a file, not a runs folder or a run directory."
        if not self.names():
            return (f"{where} holds no runs yet (no subfolder has a {LOG_NAME}). Start one with "
                    f"`labcoat run EXPERIMENT_DIR --runs-dir {where}`.")
        return None
