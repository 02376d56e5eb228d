"""Where the pages are: URLs on the live server, relative file names in a static export.

Templates and page builders never write a URL themselves: they ask a `Links`. Every name in a
URL is percent-encoded here, and every link points into the viewer (agents never choose one).
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Protocol
from urllib.parse import quote

PAGE = 50
"""Transcript entries or sandbox commands on one page."""


class Links(Protocol):
    """The URLs of one run's pages (and of the runs index)."""

    def runs(self) -> str: ...
    def run(self, *, s: int | None = None, p: int = 0) -> str: ...
    def subtask(self, sid: str, *, t: int = 0, c: int = 0) -> str: ...
    def manager(self, iteration: int, *, t: int = 0) -> str: ...
    def file(self, rel: str) -> str: ...
    def static(self, name: str) -> str: ...
    def events(self) -> str | None: ...


@functools.lru_cache(maxsize=16384)
def _q(value: str) -> str:
    """`value` percent-encoded as one path segment (cached: a page links the same ids often)."""
    return quote(value, safe="")


def _paging(**params: int | None) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items() if v or (k == "s" and v == 0))
    return f"?{query}" if query else ""


class LiveLinks:
    """Links on the server (`labcoat view`): absolute paths under /runs/<name>/."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        """The run these links are about ("": the runs index)."""
        self.base = f"/runs/{_q(name)}"

    def runs(self) -> str:
        return "/"

    def run(self, *, s: int | None = None, p: int = 0) -> str:
        return f"{self.base}/{_paging(s=s, p=p)}"

    def subtask(self, sid: str, *, t: int = 0, c: int = 0) -> str:
        return f"{self.base}/subtasks/{_q(sid)}{_paging(t=t, c=c)}"

    def manager(self, iteration: int, *, t: int = 0) -> str:
        return f"{self.base}/manager/{iteration}{_paging(t=t)}"

    def file(self, rel: str) -> str:
        return f"{self.base}/files/" + "/".join(_q(part) for part in rel.split("/"))

    def static(self, name: str) -> str:
        return f"/static/{_q(name)}"

    def events(self) -> str | None:
        return f"{self.base}/events" if self.name else "/events"


_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,80}")


def file_name(name: str) -> str:
    """A file name for `name` that is safe on any disk: itself when plain, else a hash."""
    if _SAFE.fullmatch(name) and not name.endswith("."):
        return name
    return "x-" + hashlib.sha256(name.encode()).hexdigest()[:16]


class ExportLinks:
    """Links between the files of a static export (opened from disk: relative, no server).

    Layout: index.html (the run), subtasks/<id>[.tN][.cN].html, manager/<iteration>.html,
    files/<path> (copies of the run's artifacts) and static/.
    """

    def __init__(self, depth: int) -> None:
        self.up = "../" * depth

    def runs(self) -> str:
        return f"{self.up}index.html"

    def run(self, *, s: int | None = None, p: int = 0) -> str:
        return f"{self.up}{run_file(s=s, p=p)}"

    def subtask(self, sid: str, *, t: int = 0, c: int = 0) -> str:
        return f"{self.up}subtasks/{_q(subtask_file(sid, t=t, c=c))}"

    def manager(self, iteration: int, *, t: int = 0) -> str:
        return f"{self.up}manager/{_q(manager_file(iteration, t=t))}"

    def file(self, rel: str) -> str:
        # Saved as .txt: a file opened from disk is shown by its name, never run as a page.
        return f"{self.up}files/" + "/".join(_q(part) for part in rel.split("/")) + ".txt"

    def static(self, name: str) -> str:
        return f"{self.up}static/{_q(name)}"

    def events(self) -> str | None:
        return None


def run_file(*, s: int | None = None, p: int = 0) -> str:
    """The export's file name of the run page (a later window of its lists gets a suffix)."""
    return "index" + ("" if s is None else f".s{s}") + (f".p{p}" if p else "") + ".html"


def subtask_file(sid: str, *, t: int = 0, c: int = 0) -> str:
    """The export's file name of a subtask page (a later page of its lists gets a suffix)."""
    return file_name(sid) + (f".t{t}" if t else "") + (f".c{c}" if c else "") + ".html"


def manager_file(iteration: int, *, t: int = 0) -> str:
    return f"{iteration}" + (f".t{t}" if t else "") + ".html"
