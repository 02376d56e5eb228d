"""The tools LLM roles use: `bash`, `read_file`, `write_file`, `edit_file`, `run_experiment`,
`submit`. Arguments are pydantic models (unknown fields refused).

Two kinds of failure (see `labcoat.errors`): what the *model* should see is a `ToolError` (or a
non-zero exit code in the output) and goes back to it as a tool result; infrastructure failure
(`SandboxUnavailable`) is raised for the person. `submit` raises `Submitted`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from labcoat.agents.model import ToolSpec
from labcoat.errors import UnsafeOutputError
from labcoat.sandboxes.base import ExecResult, Sandbox
from labcoat.text import middle

WORKDIR = "/workspace"


class ToolError(Exception):
    """A failure the model should see and react to (bad path, no match, ...)."""


class Submitted(Exception):
    """The role called `submit`: the subtask ends with this summary."""

    def __init__(self, summary: str) -> None:
        super().__init__(summary)
        self.summary = summary


@dataclass
class ToolEnv:
    """What tools act on: the role's sandbox and the experiment's `run` command."""

    sandbox: Sandbox | None
    run_cmd: str | None = None
    exec_timeout_s: float = 600.0
    output_chars: int = 12_000
    """Output longer than this reaches the model as its head and tail."""

    @property
    def box(self) -> Sandbox:
        if self.sandbox is None:
            raise ToolError("this role has no sandbox: only `submit` is available")
        return self.sandbox


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BashArgs(_Args):
    command: str = Field(description="A bash command, run in /workspace.")
    timeout_s: float | None = Field(None, gt=0, description="Seconds before the command is killed.")


class ReadFileArgs(_Args):
    path: str = Field(description="File path, relative to /workspace or absolute.")


class WriteFileArgs(_Args):
    path: str = Field(description="File path, relative to /workspace or absolute.")
    content: str = Field(description="The whole new content of the file.")


class EditFileArgs(_Args):
    path: str = Field(description="File path, relative to /workspace or absolute.")
    old: str = Field(min_length=1, description="Exact text to replace; must occur exactly once.")
    new: str = Field(description="Replacement text.")


class RunExperimentArgs(_Args):
    pass


class SubmitArgs(_Args):
    summary: str = Field(min_length=1, description="What you did, why, and the outcome.")


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[BaseModel]
    run: Callable[[Any, ToolEnv], Awaitable[str]]

    @property
    def spec(self) -> ToolSpec:
        schema = self.args.model_json_schema()
        schema.pop("title", None)
        return ToolSpec(name=self.name, description=self.description, parameters=schema)


def resolve(path: str) -> str:
    return path if path.startswith("/") else f"{WORKDIR}/{path.removeprefix('./')}"


def format_exec(result: ExecResult, limit: int) -> str:
    flags = [f for f, on in (("timed out", result.timed_out), ("killed: out of memory",
             result.oom_killed), ("output truncated", result.truncated)) if on]
    if result.start_error is not None:
        flags.append(f"could not start: {result.start_error}")
    head = f"exit code: {result.returncode}" + (f" ({', '.join(flags)})" if flags else "")
    parts = [head] + ([f"warning: {result.oom_warning}"] if result.oom_kills else [])
    if result.stdout:
        parts.append("stdout:\n" + middle(result.stdout, limit // 2))
    if result.stderr:
        parts.append("stderr:\n" + middle(result.stderr, limit // 2))
    return "\n".join(parts)


async def _bash(args: BashArgs, env: ToolEnv) -> str:
    result = await env.box.exec(args.command, timeout_s=args.timeout_s or env.exec_timeout_s)
    return format_exec(result, env.output_chars)


async def _read_text(env: ToolEnv, path: str) -> str:
    try:
        data = await env.box.read_file(resolve(path))
    except (OSError, UnsafeOutputError) as err:
        raise ToolError(f"cannot read {path}: {err}") from None
    return data.decode("utf-8", errors="replace")


async def _write_text(env: ToolEnv, path: str, text: str) -> None:
    try:
        await env.box.write_file(resolve(path), text)
    except OSError as err:
        raise ToolError(f"cannot write {path}: {err}") from None


async def _read_file(args: ReadFileArgs, env: ToolEnv) -> str:
    return middle(await _read_text(env, args.path), env.output_chars)


async def _write_file(args: WriteFileArgs, env: ToolEnv) -> str:
    await _write_text(env, args.path, args.content)
    return f"wrote {len(args.content)} characters to {args.path}"


async def _edit_file(args: EditFileArgs, env: ToolEnv) -> str:
    text = await _read_text(env, args.path)
    count = text.count(args.old)
    if count != 1:
        hint = "check the exact text" if count == 0 else "include more surrounding lines"
        raise ToolError(f"`old` occurs {count} times in {args.path}, expected exactly 1: {hint}")
    await _write_text(env, args.path, text.replace(args.old, args.new, 1))
    return f"edited {args.path}: replaced 1 occurrence"


async def _run_experiment(args: RunExperimentArgs, env: ToolEnv) -> str:
    if not env.run_cmd:
        raise ToolError("this experiment has no `run` command")
    result = await env.box.exec(env.run_cmd, timeout_s=env.exec_timeout_s)
    return f"ran `{env.run_cmd}` (no grading)\n" + format_exec(result, env.output_chars)


async def _submit(args: SubmitArgs, env: ToolEnv) -> str:
    raise Submitted(args.summary)


BASH = Tool("bash", "Run a bash command in the sandbox (cwd /workspace, no network unless the "
            "experiment allows it). Returns exit code, stdout and stderr.", BashArgs, _bash)
READ_FILE = Tool("read_file", "Read a text file.", ReadFileArgs, _read_file)
WRITE_FILE = Tool("write_file", "Create or overwrite a file with the given content.",
                  WriteFileArgs, _write_file)
EDIT_FILE = Tool("edit_file", "Replace one exact occurrence of `old` with `new` in a file; fails "
                 "when `old` occurs zero or several times.", EditFileArgs, _edit_file)
RUN_EXPERIMENT = Tool("run_experiment", "Run the experiment's `run` command and report its exit "
                      "code and output tail. The grader is not run here.", RunExperimentArgs,
                      _run_experiment)
SUBMIT = Tool("submit", "Finish the subtask. Your workspace changes are committed with this "
              "summary.", SubmitArgs, _submit)

DEFAULT_TOOLS: tuple[Tool, ...] = (BASH, READ_FILE, WRITE_FILE, EDIT_FILE, RUN_EXPERIMENT, SUBMIT)
