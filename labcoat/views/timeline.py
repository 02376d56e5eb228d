"""`labcoat log [--follow]`: one line per event of a run's log (no lock, no repair).

With `follow` it keeps printing new events until the run is finished, failed or paused (or
Ctrl-C). A partial last line waits for the next poll, as a writer may still be writing it.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

from labcoat.log import LogReader
from labcoat.views.render import timeline_line
from labcoat.views.status import require_run

POLL_S = 0.25
TERMINAL = frozenset({"run_finished", "run_failed", "run_paused"})


def print_timeline(run_dir: Path, follow: bool = False) -> None:
    """Print every event as one line; with `follow`, keep printing until the run stops."""
    require_run(run_dir)
    reader = LogReader(run_dir)
    with contextlib.suppress(KeyboardInterrupt):
        _follow(reader, follow)


def _follow(reader: LogReader, follow: bool) -> None:
    while True:
        batch = reader.poll()
        for event in batch:
            print(timeline_line(event), flush=follow)
        done = any(e.type in TERMINAL for e in batch)
        if not follow or done:
            break
        time.sleep(POLL_S)
    if reader.torn is not None:
        print(f"(line {reader.torn.line}: {reader.torn.reason}; the next `labcoat resume` "
              "sets it aside)", file=sys.stderr)
