"""A Markdown role file as a role: its body drives the LLM tool loop as instructions."""

from __future__ import annotations

import dataclasses

from labcoat.agents.role import RoleContext, RoleResult, Subtask
from labcoat.experiment import RoleFile


class FileRole:
    """The role a `RoleFile` describes. It needs a model: under the search brain it fails."""

    def __init__(self, spec: RoleFile) -> None:
        self.spec = spec
        self.name, self.description = spec.name, spec.description
        self.instructions = spec.instructions
        self.model: str | None = spec.model
        """Model spec from the front matter; the run builds `ctx.model` from it."""
        self.tools = spec.tools
        self.path = spec.path

    async def run(self, subtask: Subtask, ctx: RoleContext) -> RoleResult:
        if ctx.model is None:
            return RoleResult(ok=False, grade=False, error=(
                f"role {self.name} needs a model (--model anthropic:MODEL or --model "
                f"openai:MODEL, or `model:` in {self.path}); the search brain has none"))
        from labcoat.agents.llm.roles import run_file_role

        return await run_file_role(self, subtask, dataclasses.replace(
            ctx, instructions=self.instructions))
