"""A scripted research team behind a fake provider: each reply depends on the request.

`Team(shape)` is a callable script item for `FakeOpenAI` / `FakeAnthropic`: it reads who is
asking (the role named in the system prompt), which turn of the conversation it is, and the last
tool result, and answers like a (very decisive) model would. Subclass hooks change one role.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.models.servers import Recorded, anthropic_text, anthropic_tool, openai_text, openai_tool

ENGINEER_OLD = 'params.get("x", 0.1)'
ENGINEER_NEW = 'params.get("x", 0.7)'


@dataclass
class Turn:
    """One request, seen from the model's side."""

    role: str
    turn: int
    """Assistant messages so far in this conversation."""
    task: str
    last_tool: str
    body: dict[str, Any]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(_text(b.get("content", b.get("text", ""))) for b in content)
    return ""


def read_turn(shape: str, body: dict[str, Any]) -> Turn:
    msgs = body["messages"]
    if shape == "openai":
        system = msgs[0]["content"]
        tools = [m["content"] for m in msgs if m["role"] == "tool"]
        task = next(m["content"] for m in msgs if m["role"] == "user")
    else:
        system = _text(body.get("system", ""))
        tools = [_text(b.get("content")) for m in msgs if m["role"] == "user"
                 for b in (m["content"] if isinstance(m["content"], list) else [])
                 if b.get("type") == "tool_result"]
        task = _text(msgs[0]["content"])
    match = re.search(r"You are the (\w+)", system)
    role = match.group(1) if match else "?"
    turn = sum(1 for m in msgs if m["role"] == "assistant")
    return Turn(role, turn, task, tools[-1] if tools else "", body)


def body_key(rec: Recorded) -> str:
    return hashlib.sha256(rec.body).hexdigest()


@dataclass
class Team:
    """Manager plans one engineer; engineer reads, edits, submits; critic reproduces, judges."""

    shape: str = "openai"
    usage: tuple[int, int] = (10, 5)
    seen: list[Turn] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)
    """sha256 of each request body that got a reply."""
    hooks: dict[str, Callable[[Turn], tuple[str, Any] | None]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, rec: Recorded) -> Any:
        t = read_turn(self.shape, rec.json)
        with self.lock:
            self.seen.append(t)
        hook = self.hooks.get(t.role)
        name, args = (hook(t) if hook else None) or getattr(self, t.role)(t)
        reply = self.reply(name, args)
        with self.lock:
            self.answered.append(body_key(rec))
        return reply

    def reply(self, name: str, args: Any) -> dict[str, Any]:
        if self.shape == "openai":
            if name == "":
                return openai_text(args, usage=self.usage)
            return openai_tool(name, args, usage=self.usage)
        if name == "":
            return anthropic_text(args, usage=self.usage)
        return anthropic_tool(name, args, usage=self.usage)

    def manager(self, t: Turn) -> tuple[str, Any]:
        return "propose_plan", {"rationale": "try the value the goal hints at", "subtasks": [
            {"role": "engineer", "base": "best",
             "instructions": "Read train.py and set the default x to 0.7."}]}

    edit: tuple[str, str, str] = (ENGINEER_OLD, ENGINEER_NEW, "set the default x to 0.7")
    """The engineer's change to train.py: (old, new, summary)."""

    def engineer(self, t: Turn) -> tuple[str, Any]:
        old, new, summary = self.edit
        if t.turn == 0:
            return "read_file", {"path": "train.py"}
        if t.turn == 1 and old in t.last_tool:
            return "edit_file", {"path": "train.py", "old": old, "new": new}
        if t.turn == 1:
            return "write_file", {"path": "NOTES.md", "content": "already done\n"}
        return "submit", {"summary": summary}

    def reproducer(self, t: Turn) -> tuple[str, Any]:
        if t.turn == 0:
            return "bash", {"command": "env | sort"}
        if t.turn == 1:
            return "run_experiment", {}
        return "submit", {"summary": "the baseline runs as given"}

    def critic(self, t: Turn) -> tuple[str, Any]:
        if t.turn == 0:
            return "reproduce", {"seeds": [1, 2]}
        real = "exceeds the noise" in t.last_tool
        return "verdict", {"verdict": "reproducible" if real else "not_reproducible",
                           "reason": "re-graded with seeds 1 and 2: " + t.last_tool[-120:]}

    def roles(self) -> list[str]:
        return [t.role for t in self.seen]

    def of(self, role: str) -> list[Turn]:
        return [t for t in self.seen if t.role == role]


def tool_results(turn: Turn) -> str:
    return json.dumps(turn.body)
