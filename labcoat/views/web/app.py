"""The viewer's ASGI app (FastAPI): one JSON endpoint per page, the page itself built from the
same data, a file route confined to the run directory, and server-sent events for live pages.

    /                                 runs index        /api/runs
    /runs/<name>/                     run page          /api/runs/<name>
    /runs/<name>/subtasks/<id>?t=&c=  subtask page      /api/runs/<name>/subtasks/<id>?t=&c=
    /runs/<name>/manager/<iteration>  manager's calls   /api/runs/<name>/manager/<iteration>
    /runs/<name>/files/<path>         a file of the run, as plain text (404 outside the run)
    /runs/<name>/events, /events      server-sent events: "update" with the log's event count

It only reads. Every response carries a Content-Security-Policy that allows no inline script,
and a page that cannot be built says why instead of showing a traceback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labcoat.views.web.catalog import Catalog
from labcoat.views.web.files import confined
from labcoat.views.web.html import CSP, STATIC, render
from labcoat.views.web.links import LiveLinks
from labcoat.views.web.pages import PageError, all_seen, build, seen

POLL_S = 0.2
"""How often a live page's log is checked for new events (updates show within ~0.5 s)."""
SETTLE_S = 0.05
"""How long a change may keep growing before it is announced."""
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
HEADERS = [(b"content-security-policy", f"{CSP}; frame-ancestors 'none'".encode()),
           (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]


class SecurityHeaders:
    """Adds `HEADERS` to every HTTP response (pure ASGI: streaming responses stay streaming)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(target: Path, *, host: str = "127.0.0.1") -> FastAPI:
    """The viewer over `target` (a runs folder or one run directory)."""
    catalog = Catalog(target)
    app = FastAPI(title="labcoat view", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.catalog = catalog
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _page_routes(app, catalog)
    _file_route(app, catalog)
    _event_routes(app, catalog)

    @app.exception_handler(StarletteHTTPException)
    def not_found(request: Request, exc: StarletteHTTPException) -> Response:
        return _problem(exc.status_code, "No such page", "This address is not a page of the "
                        "viewer.", request.url.path.startswith("/api/"))
    # A page of a site the person visits must not read the runs through DNS rebinding: only
    # the names this server was bound to are answered.
    hosts = list(LOOPBACK) if host in LOOPBACK else ["*"]
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)
    app.add_middleware(SecurityHeaders)
    return app


def _respond(catalog: Catalog, kind: str, key: tuple[str, ...], query: dict[str, int],
             as_json: bool) -> Response:
    try:
        page, template, extra = build(catalog, kind, key, query)
    except PageError as err:
        return _problem(err.status, err.heading, err.message, as_json)
    except Exception as err:  # a view never shows a traceback: say what failed instead
        return _problem(500, "This page could not be built", f"{type(err).__name__}: {err}",
                        as_json)
    if as_json:
        return Response(page.model_dump_json(), media_type="application/json")
    return HTMLResponse(render(template, page, **extra))


def _problem(status: int, heading: str, message: str, as_json: bool) -> Response:
    if as_json:
        return JSONResponse({"error": heading, "detail": message}, status_code=status)
    html = render("problem.html.j2", None, links=LiveLinks(), heading=heading, message=message,
                  seen="")
    return HTMLResponse(html, status_code=status)


def _page_routes(app: FastAPI, catalog: Catalog) -> None:
    def route(path: str, kind: str) -> None:
        def html(request: Request) -> Response:
            return _respond(catalog, kind, tuple(request.path_params.values()),
                            _paging(request), as_json=False)

        def data(request: Request) -> Response:
            return _respond(catalog, kind, tuple(request.path_params.values()),
                            _paging(request), as_json=True)

        app.add_api_route(path, html, methods=["GET"], include_in_schema=False)
        app.add_api_route("/api" + path.rstrip("/"), data, methods=["GET"],
                          include_in_schema=False)

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        if catalog.single:
            return RedirectResponse(LiveLinks(catalog.names()[0]).run())
        return _respond(catalog, "runs", (), {}, as_json=False)

    @app.get("/api/runs", include_in_schema=False)
    def runs_data() -> Response:
        return _respond(catalog, "runs", (), {}, as_json=True)

    route("/runs/{name}/", "run")
    route("/runs/{name}/subtasks/{sid}", "subtask")
    route("/runs/{name}/manager/{iteration}", "manager")


def _paging(request: Request) -> dict[str, int]:
    """The paging parameters present and well formed (anything else: the default window)."""
    out = {}
    for key in ("t", "c", "s", "p"):
        value = request.query_params.get(key, "")
        if value.isdigit() and len(value) < 12:
            out[key] = int(value)
    return out


def _file_route(app: FastAPI, catalog: Catalog) -> None:
    @app.get("/runs/{name}/files/{rel:path}", include_in_schema=False)
    def run_file(name: str, rel: str) -> Response:
        run_dir = catalog.run_dir(name)
        path = None if run_dir is None else confined(run_dir, rel)
        if path is None:
            return _problem(404, "No such file", "There is no such file in this run.", False)
        # Plain text whatever the name says: a file an agent wrote is never rendered as HTML.
        return FileResponse(path, media_type="text/plain; charset=utf-8",
                            content_disposition_type="inline")


def _event_routes(app: FastAPI, catalog: Catalog) -> None:
    @app.get("/runs/{name}/events", response_class=EventSourceResponse,
             include_in_schema=False)
    async def run_events(name: str) -> AsyncIterator[ServerSentEvent]:
        async for count in _changes(lambda: _run_count(catalog, name)):
            yield ServerSentEvent(event="update", data={"events": count})

    @app.get("/events", response_class=EventSourceResponse, include_in_schema=False)
    async def all_events() -> AsyncIterator[ServerSentEvent]:
        async for count in _changes(lambda: all_seen(catalog)):
            yield ServerSentEvent(event="update", data={"events": count})


async def _changes(count: Callable[[], str]) -> AsyncIterator[str]:
    """The value of `count()` at once, then each time it changes (checked every POLL_S; a burst
    of appends, as a subtask's end writes, is announced once: the page is fetched once)."""
    last = None
    while True:
        now = await run_in_threadpool(count)
        if now != last and last is not None:
            await anyio.sleep(SETTLE_S)
            now = await run_in_threadpool(count)
        if now != last:
            last = now
            yield now
        await anyio.sleep(POLL_S)


def _run_count(catalog: Catalog, name: str) -> str:
    index = catalog.index(name)
    return "gone" if index is None else seen(index)
