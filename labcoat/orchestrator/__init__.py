"""The run: experiment log, state fold, resume, budgets, git workspace.

Import-light on purpose (`labcoat status` / `labcoat log` must start fast): the names below
load their module on first use.

    Journal, read_log, read_events, load_state, LogReader   labcoat.orchestrator.journal
    (the line format and read-only access live in labcoat.orchestrator.logfile)
    RunState, fold, reduce                                  labcoat.orchestrator.state
    Event, SCHEMA_VERSION                                   labcoat.orchestrator.events
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Journal": "journal", "read_log": "journal", "read_events": "journal",
    "load_state": "journal", "LogReader": "journal",
    "RunState": "state", "fold": "state", "reduce": "state",
    "Event": "events", "SCHEMA_VERSION": "events",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
