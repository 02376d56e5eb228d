"""The person's side of a live run: their requests taken in, and a waiting plan announced.

    person = Person(lab)
    person.take_in()            the inbox's requests and the terminal's answers become events
    person.announce(waiting)    once per plan: asked inline on a terminal, else which command
                                decides is said on stderr
    await person.wait(s)        sleep up to s seconds; a terminal answer wakes it early

On a terminal (stdin a TTY of the foreground process group) the run asks inline: `y` approves
the plan, `n` rejects it (a reason is asked next), a comma-separated list of subtask ids
approves only those. The answer is recorded like a command's (`approval_decided`, source
"terminal"), so it follows the same rules: a plan decided meanwhile (by `labcoat approve` from
another shell) is not decided twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from dataclasses import dataclass, field
from typing import TextIO

from labcoat.log.steering import Approval
from labcoat.orchestrator import inbox, steering
from labcoat.orchestrator.lab import Lab
from labcoat.text import first_line, inert


@dataclass(frozen=True)
class Answer:
    """A decision typed at the run's terminal."""

    plan: str
    decision: str
    approved: tuple[str, ...] = ()
    reason: str = ""


@dataclass
class Person:
    """Takes a person's requests and answers into the log for one live run."""

    lab: Lab
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    out: TextIO = field(default_factory=lambda: sys.stderr)
    answers: list[Answer] = field(default_factory=list)
    announced: set[str] = field(default_factory=set)
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    _asking: Approval | None = None
    _rejecting: bool = False

    def take_in(self) -> int:
        """Record what the person sent or typed; how many events that made."""
        lab = self.lab
        count = steering.take_in(lab.run_dir, lambda: lab.state, lab.emit)
        answers, self.answers = self.answers, []
        for answer in answers:
            count += self._record(answer)
        return count

    def _record(self, answer: Answer) -> int:
        waiting = self.lab.state.pending_approval
        if waiting is None or waiting.plan != answer.plan:
            self._say("that plan was decided already; your answer was not recorded")
            return 0
        self.lab.emit("approval_decided", plan=answer.plan, decision=answer.decision,
                      approved=list(answer.approved), reason=answer.reason,
                      request=uuid.uuid4().hex, source="terminal")
        return 1

    def arrived(self) -> bool:
        """A request or an answer waits to be taken in."""
        return bool(self.answers) or inbox.has_requests(self.lab.run_dir)

    async def wait(self, seconds: float) -> None:
        self.woken.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.woken.wait(), seconds)

    # -- announcing ------------------------------------------------------------------------------

    def announce(self, waiting: Approval | None) -> None:
        """Say once per plan that it waits, and ask on a terminal."""
        if waiting is None or waiting.plan in self.announced:
            return
        self.announced.add(waiting.plan)
        run = self.lab.run_dir
        self._say(f"waiting for a person: {len(waiting.subtasks)} subtask(s) of iteration "
                  f"{waiting.iteration} await approval ({self._why(waiting)}):")
        for sid in waiting.subtasks:
            self._say(f"  {self._describe(sid, waiting)}")
        if self._can_ask():
            self._ask(waiting)
        else:
            self._say(f"decide with `labcoat approve {run}` [--only ID,...] or `labcoat reject "
                      f"{run} --reason TEXT`")

    @staticmethod
    def _why(waiting: Approval) -> str:
        return "--approve plans" if waiting.gate == "plans" else "their worst-case spend"

    def _describe(self, sid: str, waiting: Approval) -> str:
        rec = self.lab.state.subtasks.get(sid)
        what = first_line(str(rec.subtask.get("instructions", "")), 100) if rec else ""
        cost = waiting.worst_usd.get(sid)
        price = f" (worst case ${cost:.2f})" if cost is not None else ""
        return f"{sid} {rec.role if rec else '?'}: {what}{price}"

    def _say(self, text: str) -> None:
        print(f"labcoat: {inert(text)}", file=self.out, flush=True)

    # -- asking on a terminal ------------------------------------------------------------------

    def _can_ask(self) -> bool:
        """stdin is a terminal, and this process is in its foreground when it is the process's
        controlling terminal (a background run that read it would be stopped by SIGTTIN)."""
        try:
            fd = self.stdin.fileno()
            if not os.isatty(fd):
                return False
        except (OSError, ValueError):
            return False
        try:
            return os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:  # not our controlling terminal: reading it cannot stop us
            return True

    def _ask(self, waiting: Approval) -> None:
        if self._asking is None:
            asyncio.get_running_loop().add_reader(self.stdin.fileno(), self._on_line)
        self._asking, self._rejecting = waiting, False
        self._prompt("approve? y = all, n = reject, or the ids to run only those (a,b): ")

    def _prompt(self, text: str) -> None:
        print(text, end="", file=self.out, flush=True)

    def _on_line(self) -> None:
        line = self.stdin.readline()
        waiting = self._asking
        if waiting is None or not line:  # end of input: nobody will answer here
            self.close()
            return
        answer = self._parse(line.strip(), waiting)
        if answer is not None:
            self.answers.append(answer)
            self.close()
            self.woken.set()

    def _parse(self, text: str, waiting: Approval) -> Answer | None:
        if self._rejecting:
            if text:
                return Answer(waiting.plan, "rejected", reason=text)
            self._prompt("a reason, please (the manager plans again with it): ")
            return None
        if text.lower() in ("y", "yes"):
            return Answer(waiting.plan, "approved", approved=waiting.subtasks)
        if text.lower() in ("n", "no"):
            self._rejecting = True
            self._prompt("why? (the manager plans again with your reason): ")
            return None
        ids = tuple(x.strip() for x in text.split(",") if x.strip())
        if ids and set(ids) <= set(waiting.subtasks):
            return Answer(waiting.plan, "approved", approved=ids)
        self._prompt(f"y, n, or ids among {', '.join(waiting.subtasks)}: ")
        return None

    def close(self) -> None:
        """Stop reading the terminal."""
        if self._asking is not None:
            self._asking = None
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                asyncio.get_running_loop().remove_reader(self.stdin.fileno())
