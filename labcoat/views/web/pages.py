"""Which page is which: a request's kind and keys to the page's data, template and links.

    page, template, extra = build(catalog, "subtask", (name, sid), {"t": 0, "c": 0})

The server and the static export both go through here, so the JSON, the live HTML and the
exported HTML of a page are made from the same data. `PageError` says why there is no page.
"""

from __future__ import annotations

from labcoat.views.web.catalog import Catalog
from labcoat.views.web.index import RunIndex, manager_key
from labcoat.views.web.links import Links, LiveLinks
from labcoat.views.web.models import ManagerPage, Page
from labcoat.views.web.runpage import nav, run_page, runs_page
from labcoat.views.web.subtask import subtask_page
from labcoat.views.web.transcript import transcript_page

Built = tuple[Page, str, dict[str, object]]
Query = dict[str, int]
"""Paging: t (transcript), c (commands), s (subtask rows), p (plans); absent: the default."""


class PageError(Exception):
    """No such page: `status`, a heading and a message that says what to do."""

    def __init__(self, status: int, heading: str, message: str) -> None:
        super().__init__(message)
        self.status, self.heading, self.message = status, heading, message


def seen(index: RunIndex) -> str:
    """What a live page compares with the server's updates: the events it shows."""
    return f"{index.events}" + ("!" if index.problem else "")


def all_seen(catalog: Catalog) -> str:
    """`seen` of every run of the catalog (the runs index changes with any of them)."""
    parts = []
    for name in catalog.names():
        index = catalog.index(name)
        parts.append(f"{name}={'gone' if index is None else seen(index)}")
    return " ".join(parts)


def build(catalog: Catalog, kind: str, key: tuple[str, ...], query: Query,
          links: Links | None = None) -> Built:
    """The page `kind` ("runs", "run", "subtask", "manager") for `key` (the path's names)."""
    if kind == "runs":
        page = runs_page(catalog)
        return page, "runs.html.j2", {"links": links or LiveLinks(), "seen": all_seen(catalog),
                                      "run_links": {r.name: LiveLinks(r.name)
                                                    for r in page.runs}}
    name = key[0]
    index = catalog.index(name)
    if index is None:
        raise PageError(404, "No such run", f"There is no run called {name!r} in "
                        f"{catalog.target}. The runs index lists those there are.")
    links = links or LiveLinks(name)
    with index.lock:
        return _run_pages(kind, name, index, key, query, links)


def _run_pages(kind: str, name: str, index: RunIndex, key: tuple[str, ...], query: Query,
               links: Links) -> Built:
    extra: dict[str, object] = {"links": links, "seen": seen(index)}
    if kind == "run":
        # Paging one list shows the other from its start (an export has no page for each pair).
        extra["s_href"] = lambda n: links.run(s=n)
        extra["p_href"] = lambda n: links.run(p=n)
        run = run_page(name, index, links, s=query.get("s"), p=query.get("p", 0))
        return run, "run.html.j2", extra
    if kind == "subtask":
        t, c = query.get("t", 0), query.get("c", 0)
        page = subtask_page(name, index, key[1], t=t, c=c, links=links)
        if page is None and index.behind:
            raise PageError(503, "Still reading the log", f"{index.events} events of {name} "
                            "read so far, and no subtask of that name yet: reload in a moment.")
        if page is None:
            raise PageError(404, "No such subtask", f"The log of {name} plans no subtask "
                            f"called {key[1]!r}.")
        extra["t_href"] = lambda n: links.subtask(key[1], t=n)
        extra["c_href"] = lambda n: links.subtask(key[1], c=n)
        return page, "subtask.html.j2", extra
    if kind == "manager" and key[1].isdigit():
        iteration = int(key[1])
        manager = ManagerPage(nav=nav(name, index), iteration=iteration,
                              transcript=transcript_page(index, manager_key(iteration),
                                                         query.get("t", 0)))
        extra["t_href"] = lambda n: links.manager(iteration, t=n)
        extra["iteration"] = iteration
        return manager, "manager.html.j2", extra
    raise PageError(404, "No such page", "This address is not a page of the viewer.")
