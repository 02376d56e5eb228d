"""`tool_call` events keep the result the model was shown (capped), and older logs still load."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from labcoat.agents.llm.models import ScriptedModel, tool_reply
from labcoat.agents.llm.toolloop import run_tool_loop
from labcoat.log import read_events
from labcoat.log.events import TAIL_CAP, ToolCallEvent

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "logs"


def _loop_events(*replies: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    model = ScriptedModel(list(replies))
    asyncio.run(run_tool_loop(model, system="s", task="t", sandbox=None,
                              emit=lambda kind, fields: events.append({"type": kind, **fields})))
    return [e for e in events if e["type"] == "tool_call"]


def test_each_tool_call_records_what_the_model_was_shown() -> None:
    calls = _loop_events(tool_reply("read_file", {"path": "train.py"}),
                         tool_reply("rm_rf", {"path": "/"}),
                         tool_reply("submit", {"summary": "done"}))
    assert [c["tool"] for c in calls] == ["read_file", "rm_rf", "submit"]
    failed, rejected, submitted = calls
    assert failed["result"] == "error: this role has no sandbox: only `submit` is available"
    assert rejected["result"].startswith("error: unknown tool 'rm_rf'; available: bash")
    assert submitted["result"] is None  # submit ends the loop: nothing goes back to the model


def test_the_result_is_capped_like_the_other_tails() -> None:
    base = {"seq": 0, "id": "x", "run_id": "r", "iteration": 1, "ts": 0.0, "tool": "bash"}
    huge = "start " + "y" * (5 * TAIL_CAP) + " the end"
    event = ToolCallEvent.model_validate({**base, "result": huge})
    assert event.result is not None and len(event.result) <= TAIL_CAP
    assert event.result.endswith(" the end") and "chars cut" in event.result
    assert ToolCallEvent.model_validate({**base, "result": event.result}).result == event.result


def test_logs_written_before_results_were_recorded_still_load() -> None:
    for version in ("v0/basic", "v1/complete"):
        events = read_events(FIXTURES / version)
        assert events and all(getattr(e, "result", None) is None for e in events
                              if e.type == "tool_call")
