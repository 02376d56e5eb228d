"""An agent's transcript and its sandbox commands, a page at a time, as data.

    transcript_page(index, key, start)   model calls (model, tokens, cost, duration, replayed or
                                         bought, the assistant's text and tool calls), tool calls
                                         (arguments and the result the model saw), model errors
    commands_page(index, sid, start)     sandbox commands with exit codes and durations

Only one page of events is read from the log at a time (`RunIndex` knows where they are), so a
subtask with a 100 MB transcript costs the server one page.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from labcoat.log import events as ev
from labcoat.views.web.index import RunIndex
from labcoat.views.web.links import PAGE
from labcoat.views.web.models import (
    Command,
    CommandsPage,
    Entry,
    ToolUse,
    TranscriptPage,
    shown,
    window,
)
from labcoat.views.web.runpage import clock


def transcript_page(index: RunIndex, key: str, start: int = 0) -> TranscriptPage:
    """Entries `start`.. of the transcript `key` (a subtask id, or the manager's key)."""
    w = window(len(index.calls.get(key) or ()), start, PAGE)
    entries = [entry(e) for e in index.transcript(key, w.start, PAGE)]
    return TranscriptPage(**w.model_dump(), entries=entries)


def commands_page(index: RunIndex, sid: str, start: int = 0) -> CommandsPage:
    w = window(len(index.execs.get(sid) or ()), start, PAGE)
    commands = [command(e) for e in index.commands(sid, w.start, PAGE)
                if isinstance(e, ev.SandboxExec)]
    return CommandsPage(**w.model_dump(), commands=commands)


def command(e: ev.SandboxExec) -> Command:
    flags = " ".join(f for f, on in (("timed out", e.timed_out), ("out of memory", e.oom_killed))
                     if on)
    return Command(seq=e.seq, time=clock(e.ts), cmd=shown(e.cmd), returncode=e.returncode,
                   duration_s=e.duration_s, flags=flags, stdout=shown(e.stdout_tail, end=True),
                   stderr=shown(e.stderr_tail, end=True))


def entry(e: ev.EventBase) -> Entry:
    """One event of a transcript as the page shows it."""
    build = _ENTRIES.get(e.type)
    if build is None:
        return Entry(seq=e.seq, kind="error", time=clock(e.ts), title=e.type, meta="", text="")
    return build(e)


def _model_call(e: ev.LlmCall) -> Entry:
    message = e.response.get("message")
    message = message if isinstance(message, dict) else {}
    calls = [ToolUse(name=shown(c.get("name", "?"), 200),
                     arguments=shown(c.get("raw_arguments") or _json(c.get("arguments"))))
             for c in message.get("tool_calls") or [] if isinstance(c, dict)]
    stop = e.response.get("stop_reason")
    meta = [shown(e.model, 200), _tokens(e.usage), _cost(e.cost_usd), f"{e.duration_s:.2f} s",
            "replayed from the log" if e.replayed else "bought"]
    if stop:
        meta.append(f"stop: {shown(stop, 100)}")
    return Entry(seq=e.seq, kind="model", time=clock(e.ts), title=f"model call ({e.role})",
                 meta=" · ".join(meta), text=shown(message.get("content", "")), calls=calls)


def _tool_call(e: ev.ToolCallEvent) -> Entry:
    state = "ok" if e.ok else ("rejected" if (e.error or "").startswith("rejected") else "error")
    meta = f"{state} · {e.duration_s:.2f} s"
    text = shown(e.arguments)
    if e.error:
        text += "\n" * bool(text) + shown(f"error: {e.error}")
    return Entry(seq=e.seq, kind="tool", time=clock(e.ts), title=shown(e.tool, 200), meta=meta,
                 text=text, result=None if e.result is None else shown(e.result, end=True),
                 bad=not e.ok)


def _model_error(e: ev.LlmError) -> Entry:
    return Entry(seq=e.seq, kind="error", time=clock(e.ts), title=shown(e.error, 200),
                 meta=f"{shown(e.model, 200)} ({shown(e.role or '-', 100)})",
                 text=shown(e.message), bad=True)


def _tokens(usage: dict[str, int]) -> str:
    text = f"{usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out tokens"
    cached = usage.get("cache_read_tokens", 0) + usage.get("cache_write_tokens", 0)
    return text + (f" (+{cached} cached)" if cached else "")


def _cost(usd: float | None) -> str:
    return "price unknown" if usd is None else f"${usd:.5f}"


def _json(value: object) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


_ENTRIES: dict[str, Callable[[Any], Entry]] = {
    "llm_call": _model_call, "tool_call": _tool_call, "llm_error": _model_error}
