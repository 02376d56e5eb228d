"""Everything that shows a run to a person: status, the log timeline, live progress, the report.

Views read the log (and the workspace's git history) and never drive the loop: they import
neither the orchestrator nor the agents (an import-linter contract checks it). One event
renderer (`render`) serves the timeline and live progress alike.

    from labcoat.views import print_status, print_timeline, write_report
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labcoat.lazy import lazy_exports

if TYPE_CHECKING:
    from labcoat.views.report import (
        summarize,
        write_report,
    )
    from labcoat.views.status import (
        print_status,
    )
    from labcoat.views.timeline import (
        print_timeline,
    )

_LAZY = {
    "summarize": "labcoat.views.report",
    "write_report": "labcoat.views.report",
    "print_status": "labcoat.views.status",
    "print_timeline": "labcoat.views.timeline",
}

__all__ = [
    "print_status",
    "print_timeline",
    "summarize",
    "write_report",
]


__getattr__ = lazy_exports(__name__, _LAZY)
