"""A role's own bugs, reported where they are: the one-line error names the role's frame (not
the library it called) and the full traceback rides along; an unknown event type is named."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from labcoat.agents.guard import TRACEBACK_FILE, RoleCrashed, run_role_guarded
from labcoat.agents.role import RoleContext, RoleResult, Subtask
from labcoat.experiment import Experiment, ExperimentSpec
from labcoat.log import Journal, emitter

SUB = Subtask(id="it001-01", iteration=1, role="parser", instructions="x", base_commit="c0")
SPEC = ExperimentSpec.model_validate({"name": "t", "run": "true", "evaluate": "true",
                                      "metric": {"name": "m", "direction": "maximize"}})


class Parser:
    name, description = "parser", "parses"

    async def run(self, subtask: Subtask, ctx: RoleContext) -> RoleResult:
        return RoleResult(summary=str(json.loads("{not json")))  # raises inside json/


class Chatty:
    name, description = "chatty", "emits"

    async def run(self, subtask: Subtask, ctx: RoleContext) -> RoleResult:
        ctx.emit("progress", {"percent": 50})
        return RoleResult()


def _guarded(role: object, tmp: Path) -> RoleResult:
    async def no_grade(commit: str, seed: int) -> None:
        return None

    with Journal.open(tmp / "run", "r1", create=True) as journal:
        ctx = RoleContext(run_id="r1", spec=Experiment(SPEC, tmp, tmp / "experiment.yaml"),
                          sandbox=None, emit=emitter(journal), grade=no_grade)
        return asyncio.run(run_role_guarded(role, SUB, ctx, 30))  # type: ignore[arg-type]


def test_the_error_points_at_the_roles_own_line_and_keeps_the_traceback(tmp_path: Path) -> None:
    result = _guarded(Parser(), tmp_path)
    assert isinstance(result, RoleCrashed) and not result.ok
    assert result.error is not None and "role parser raised JSONDecodeError" in result.error
    assert f"{__file__}:" in result.error and "decoder.py" not in result.error
    assert f"artifacts/it001-01/{TRACEBACK_FILE}" in result.error
    assert "json/decoder.py" in result.traceback and "JSONDecodeError" in result.traceback


def test_an_unknown_event_type_is_named_in_plain_words(tmp_path: Path) -> None:
    result = _guarded(Chatty(), tmp_path)
    assert result.error is not None and not result.ok
    assert "unknown event type 'progress'; the log knows these types: " in result.error
    assert "sandbox_exec" in result.error and "tagged-union" not in result.error
