"""A person steering a run: `labcoat note`, `approve`, `reject` and `stop`, and how their
requests become events of the log.

    send(run_dir, ask)     the commands' side: check the request against the run, then
                           record it (no process runs the run) or post it to the live run
    take_in(journal)       the writer's side: the inbox's requests become events, once each
    settle(run_dir)        after a writer lets go: take in what arrived meanwhile

Whichever process holds the log's lock records a request; the others post it to the run's inbox
(`labcoat.orchestrator.inbox`), which the live run reads every `POLL_S` while it waits. A command
that holds the lock records its own request at once, after whatever waited in the inbox, so the
log keeps the order in which requests were made. Bad input (a run directory that does not exist,
an approval when nothing waits, `--only` naming a subtask that does not wait) is one message and
exit code 2, with nothing written. A request that was fine when sent but no longer applies when
the writer takes it in (the plan was decided at the run's terminal meanwhile) is dropped with a
message; the run never acts on one twice.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from labcoat.errors import ConfigError, LabcoatError, RunLocked
from labcoat.log import EventBase, Journal, LogReader, RunState, fold
from labcoat.orchestrator import inbox
from labcoat.orchestrator.inbox import Request
from labcoat.text import inert
from labcoat.views.status import require_run

CONFIRM_S = 5.0
"""How long a command waits for the live run to record its request before it says queued."""


class Append(Protocol):
    """`Journal.append` / `Lab.emit`: how a writer records an event."""

    def __call__(self, type_: str, /, **fields: Any) -> EventBase: ...


# -- what a request means ------------------------------------------------------------------------

def problem(request: Request, state: RunState) -> str | None:
    """Why `request` cannot be honoured by the run as `state` stands, or None."""
    if request.kind == "note":
        return None if request.text.strip() else "the note is empty; fix: say something"
    if request.kind == "stop":
        if state.status != "running":
            return (f"the run is {state.status}, not running: nothing to stop "
                    "(a stopped run stays stopped until `labcoat resume`)")
        return None
    return _decision_problem(request, state)


def _decision_problem(request: Request, state: RunState) -> str | None:
    pending = state.pending_approval
    if pending is None:
        return ("no plan is waiting for approval in this run; fix: run it with `--approve "
                "plans` (or `--approve spend-over USD`), and decide when a plan waits")
    if request.plan and request.plan != pending.plan:
        return "the plan it decides on was decided already"
    unknown = [sid for sid in request.only if sid not in pending.subtasks]
    if unknown:
        return (f"--only names {', '.join(unknown)}, which {'is' if len(unknown) == 1 else 'are'}"
                f" not waiting for approval; waiting: {', '.join(pending.subtasks)}")
    if request.kind == "reject" and not request.reason.strip():
        return "a rejection needs a reason (the manager plans again with it); fix: --reason TEXT"
    return None


def event_of(request: Request, state: RunState) -> tuple[str, dict[str, Any]]:
    """The event that records `request` (checked with `problem` first)."""
    if request.kind == "note":
        return "note_added", {"text": request.text, "request": request.id}
    if request.kind == "stop":
        return "stop_requested", {"now": request.now, "request": request.id}
    pending = state.pending_approval
    assert pending is not None, "checked by problem()"
    if request.kind == "reject":
        return "approval_decided", {"plan": pending.plan, "decision": "rejected",
                                    "reason": request.reason, "request": request.id}
    return "approval_decided", {"plan": pending.plan, "decision": "approved",
                                "approved": list(request.only or pending.subtasks),
                                "request": request.id}


# -- the writer's side ---------------------------------------------------------------------------

def take_in(run_dir: Path, state: Callable[[], RunState], append: Append) -> int:
    """Record the inbox's requests (each once) through `append`; how many were recorded."""
    recorded = 0
    for posted in inbox.waiting(run_dir):
        request = posted.request
        if request.id not in state().requests:
            why = problem(request, state())
            if why is None:
                type_, fields = event_of(request, state())
                append(type_, **fields)  # fsynced (COMMITTING) before the file goes
                recorded += 1
            else:
                print(f"labcoat: a {request.kind} request was not taken: {inert(why)}",
                      file=sys.stderr)
        inbox.done(posted)
    return recorded


def take_in_journal(journal: Journal) -> int:
    """`take_in` for a process that holds `journal` (a command, or `labcoat resume`)."""
    return take_in(journal.run_dir, lambda: journal.state, journal.append)


def settle(run_dir: Path) -> None:
    """Take in requests posted while the lock's holder was letting go: a writer calls it after
    releasing the lock, so that no request waits for a process that is gone. Best effort: what
    cannot be taken in now stays in the inbox for the next writer."""
    while inbox.has_requests(run_dir):
        try:
            journal = Journal.open(run_dir, create=False)
        except RunLocked:
            return  # the holder takes it in, and settles after itself
        except (LabcoatError, OSError):
            return
        with journal:
            if not take_in_journal(journal):
                return


# -- the commands' side --------------------------------------------------------------------------

Ask = Callable[[RunState], Request]
"""Builds the request from the run's state; raises `ConfigError` when it cannot be made."""


def checked(request: Request, state: RunState) -> Request:
    """`request`, or `ConfigError` (exit 2) saying why the run cannot honour it."""
    why = problem(request, state)
    if why is not None:
        raise ConfigError(why)
    return request


def send(run_dir: Path, ask: Ask) -> str:
    """Record a person's request in the run's log, or post it to the live run; what happened,
    in a line. Nothing is written when the request is refused."""
    require_run(run_dir)
    try:
        journal = Journal.open(run_dir, create=False)
    except RunLocked:
        return _post(run_dir, ask)
    try:
        take_in_journal(journal)
        request = ask(journal.state)
        type_, fields = event_of(request, journal.state)
        event = journal.append(type_, **fields)
    finally:
        journal.close()
    settle(run_dir)
    return f"recorded in {run_dir}/log.jsonl as event #{event.seq} ({event.type})"


def _post(run_dir: Path, ask: Ask) -> str:
    reader = LogReader(run_dir)
    request = ask(fold(reader.poll()))
    inbox.post(run_dir, request)
    settle(run_dir)  # the holder may have let go meanwhile
    deadline = time.monotonic() + CONFIRM_S
    while time.monotonic() < deadline:
        gone = not _still_posted(run_dir, request)  # before reading: its event is durable then
        event = next((e for e in reader.poll() if getattr(e, "request", None) == request.id),
                     None)
        if event is not None:
            return (f"recorded in {run_dir}/log.jsonl as event #{event.seq} ({event.type}) by "
                    "the process that holds the run")
        if gone:
            raise ConfigError("the live run did not take it: it no longer applied (the run's "
                              "output says why); nothing was written")
        settle(run_dir)  # the run may have ended (or been killed) without taking it in
        time.sleep(0.05)
    return (f"queued in {inbox.folder(run_dir)}/: the live run records it at its next step "
            f"(`labcoat log {run_dir}` shows it then)")


def _still_posted(run_dir: Path, request: Request) -> bool:
    return any(inbox.folder(run_dir).glob(f"*-{request.id}.json"))


# -- the requests the verbs make -----------------------------------------------------------------

def note_request(text: str) -> Ask:
    """`labcoat note RUN_DIR TEXT`."""
    request = Request(kind="note", text=text)
    return lambda state: checked(request, state)


def approve_request(only: list[str]) -> Ask:
    """`labcoat approve RUN_DIR [--only IDS]` (the plan that waits when it is made)."""

    def ask(state: RunState) -> Request:
        pending = state.pending_approval
        return checked(Request(kind="approve", plan=pending.plan if pending else "", only=only),
                       state)

    return ask


def reject_request(reason: str) -> Ask:
    """`labcoat reject RUN_DIR --reason TEXT`."""

    def ask(state: RunState) -> Request:
        pending = state.pending_approval
        return checked(Request(kind="reject", plan=pending.plan if pending else "",
                               reason=reason), state)

    return ask


def stop_request(now: bool) -> Ask:
    """`labcoat stop RUN_DIR [--now]`."""
    request = Request(kind="stop", now=now)
    return lambda state: checked(request, state)
