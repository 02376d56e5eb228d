"""The inbox: how a person's request reaches a run whose log another process writes.

    RUN_DIR/inbox/<time ns>-<request id>.json      one `Request` per file

The log has one writer, the process that holds its lock. A command that cannot take the lock
(`labcoat note`, `approve`, `reject`, `stop` while the run is live) posts its request here
instead; the writer takes it in (`labcoat.orchestrator.steering.take_in`): it appends the
request's event, which carries the request id, and deletes the file only once the event is
durable. So a request is never lost, whenever a process dies:

* a sender killed before the rename leaves only a hidden temporary file (the request was never
  sent, and the sender never said it was);
* a writer killed before the append finds the file again at the next take-in;
* a writer killed between the append and the delete finds the request id in the log, and only
  deletes the file: it is taken in exactly once.

Posting renames a fsynced temporary file into place under `inbox/.lock` (a flock), and the
writer lists the folder under the same lock, so the names, stamped under the lock, sort in the
order the requests became visible: two notes sent at once reach the log in the order of their
names. A file that is not a request (hand-made, damaged) is moved to `inbox/refused/`, with a
message, and never stops the run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from labcoat.durable import fsync_path, write_synced
from labcoat.text import inert

INBOX = "inbox"
LOCK = ".lock"
REFUSED = "refused"

Kind = Literal["note", "approve", "reject", "stop"]


class Request(BaseModel):
    """One thing a person asks of a run (the file's JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, pattern=r"^[0-9a-f]{32}$")
    kind: Kind
    text: str = ""
    """A note's text."""
    plan: str = ""
    """approve / reject: the id of the `plan_proposed` event decided on."""
    only: list[str] = Field(default_factory=list)
    """approve: the subtasks to let start (empty: every waiting one)."""
    reason: str = ""
    """reject: why (the manager reads it)."""
    now: bool = False
    """stop: cancel the running subtasks too."""


@dataclass(frozen=True)
class Posted:
    """A request found in the inbox, and its file."""

    path: Path
    request: Request


def folder(run_dir: Path) -> Path:
    return Path(run_dir) / INBOX


@contextlib.contextmanager
def _locked(box: Path) -> Iterator[None]:
    fd = os.open(box / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def post(run_dir: Path, request: Request) -> Path:
    """Write `request` into the run's inbox durably; return its file."""
    box = folder(run_dir)
    box.mkdir(exist_ok=True)
    tmp = box / f".{request.id}.tmp"
    write_synced(tmp, request.model_dump_json().encode())
    with _locked(box):
        path = box / f"{time.time_ns():020d}-{request.id}.json"
        os.rename(tmp, path)
        fsync_path(box, directory=True)
    return path


def has_requests(run_dir: Path) -> bool:
    """Whether a request waits (cheap: one directory scan, no lock)."""
    try:
        with os.scandir(folder(run_dir)) as entries:
            return any(e.name.endswith(".json") and not e.name.startswith(".")
                       for e in entries)
    except OSError:
        return False


def waiting(run_dir: Path) -> list[Posted]:
    """The requests in the inbox, oldest first; files that are not requests are set aside."""
    box = folder(run_dir)
    if not has_requests(run_dir):
        return []
    with _locked(box):
        paths = sorted(p for p in box.glob("*.json") if not p.name.startswith("."))
    out = []
    for path in paths:
        try:
            out.append(Posted(path, Request.model_validate_json(path.read_bytes())))
        except (OSError, ValueError, ValidationError) as err:
            _refuse(path, err)
    return out


def _refuse(path: Path, err: Exception) -> None:
    aside = path.parent / REFUSED
    with contextlib.suppress(OSError):
        aside.mkdir(exist_ok=True)
        os.replace(path, aside / path.name)
    print(f"labcoat: {path} is not a request ({inert(str(err).splitlines()[0])}); moved to "
          f"{aside}/", file=sys.stderr)


def done(posted: Posted) -> None:
    """Delete a request's file once its event is durable (or it was refused). A delete lost
    in a crash is harmless: the request id is in the log, and the next take-in deletes it."""
    with contextlib.suppress(FileNotFoundError):
        posted.path.unlink()
