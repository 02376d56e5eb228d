"""`Sleeper`: a role whose code blocks its thread for an hour, as careless plugin code does.

Used by dotted path (`labcoat_test_plugin.sleeper:Sleeper`): labcoat must fail its subtask at
the role time limit while the rest of the run goes on.
"""

from __future__ import annotations

import time

from labcoat.agents import RoleContext, RoleResult, Subtask


class Sleeper:
    name = "sleeper"
    description = "Blocks for an hour in plain Python (time.sleep), never awaiting anything."

    async def run(self, subtask: Subtask, ctx: RoleContext) -> RoleResult:
        time.sleep(3600)
        return RoleResult(summary="woke up")
