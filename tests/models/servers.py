"""Fake model providers on 127.0.0.1 for driving the real SDK clients.

    with FakeOpenAI([openai_tool("bash", {"command": "ls"}), openai_text("done")]) as srv:
        model = build_model("openai:gpt-4o", base_url=srv.base_url, api_key="sk-test")
        ...
        assert len(srv.requests) == 2
        srv.requests[0].json["messages"]

Script items, answered in order (one per HTTP request, retries included):
  * a `Respond` (status, JSON or text body, headers, or an action: hang / reset),
  * a dict (a 200 JSON body),
  * a callable `(Recorded) -> Respond | dict` for answers that depend on the request.
When the script runs out the server answers 418 "script exhausted" (never retried by the SDKs).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal


@dataclass
class Respond:
    """One scripted answer."""

    status: int = 200
    body: Any = None
    """A dict/list is sent as JSON; a str as-is (with `content_type`)."""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    action: Literal["respond", "hang", "reset"] = "respond"
    """`hang`: never answer (until the server stops); `reset`: close the TCP connection with RST."""


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body or b"null")


ScriptItem = Respond | dict[str, Any] | Callable[[Recorded], "Respond | dict[str, Any]"]


class FakeServer:
    """A scripted HTTP server in a background thread. Use as a context manager."""

    path_prefix = ""

    def __init__(self, script: Iterable[ScriptItem] = ()) -> None:
        self.script: list[ScriptItem] = list(script)
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._httpd.handle_error = lambda *_a: None  # type: ignore[method-assign]
        # A short poll interval: `shutdown()` waits for the serve loop's next poll (0.5 s by
        # default), which was most of each model test's time.
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.01,),
                                        daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path_prefix}"

    def add(self, *items: ScriptItem) -> None:
        with self._lock:
            self.script.extend(items)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next(self, rec: Recorded) -> Respond:
        with self._lock:
            self.requests.append(rec)
            item = self.script.pop(0) if self.script else _EXHAUSTED
        answer = item(rec) if callable(item) else item
        return answer if isinstance(answer, Respond) else Respond(body=answer)


_EXHAUSTED = Respond(418, {"error": {"message": "fake server: script exhausted",
                                     "type": "invalid_request_error"}})


class FakeOpenAI(FakeServer):
    """Speaks the Chat Completions shape; `base_url` ends in `/v1`."""

    path_prefix = "/v1"


class FakeAnthropic(FakeServer):
    """Speaks the Messages shape; `base_url` is the bare host."""


def _handler_for(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            rec = Recorded("POST", self.path, dict(self.headers.items()), self.rfile.read(length))
            _answer(self, server, server._next(rec))

        do_GET = do_POST

    return Handler


def _answer(h: BaseHTTPRequestHandler, server: FakeServer, r: Respond) -> None:
    if r.action == "hang":
        server._stop.wait(60)
        h.close_connection = True
        return
    if r.action == "reset":
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.close_connection = True
        h.connection.close()
        return
    raw = r.body if isinstance(r.body, str) else json.dumps(r.body)
    data = raw.encode()
    h.send_response(r.status)
    h.send_header("content-type", r.content_type)
    h.send_header("content-length", str(len(data)))
    for name, value in r.headers.items():
        h.send_header(name, value)
    h.end_headers()
    h.wfile.write(data)


# ---- response builders ---------------------------------------------------------------------


def html(status: int, text: str = "Bad Gateway", headers: dict[str, str] | None = None) -> Respond:
    page = f"<html><head><title>{status}</title></head><body><h1>{text}</h1></body></html>"
    return Respond(status, page, headers or {}, content_type="text/html")


def hang() -> Respond:
    return Respond(action="hang")


def reset() -> Respond:
    return Respond(action="reset")


def openai_error(
    status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Respond:
    body = {"error": {"message": message, "type": type, "code": code, "param": None}}
    return Respond(status, body, headers or {})


def anthropic_error(
    status: int, message: str, *, type: str = "invalid_request_error",
    headers: dict[str, str] | None = None,
) -> Respond:
    body = {"type": "error", "error": {"type": type, "message": message}}
    return Respond(status, body, headers or {})


def _openai_body(message: dict[str, Any], finish: str, usage: tuple[int, int], cached: int,
                 model: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:10]}", "object": "chat.completion", "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                  "total_tokens": sum(usage),
                  "prompt_tokens_details": {"cached_tokens": cached}},
    }


def openai_text(text: str, *, finish: str = "stop", usage: tuple[int, int] = (10, 5),
                cached: int = 0, model: str = "gpt-4o") -> dict[str, Any]:
    message = {"role": "assistant", "content": text}
    return _openai_body(message, finish, usage, cached, model)


def openai_tool(name: str, arguments: dict[str, Any] | str, *, call_id: str | None = None,
                finish: str = "tool_calls", usage: tuple[int, int] = (10, 5), cached: int = 0,
                model: str = "gpt-4o", text: str | None = None) -> dict[str, Any]:
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    call = {"id": call_id or f"call_{uuid.uuid4().hex[:8]}", "type": "function",
            "function": {"name": name, "arguments": raw}}
    message = {"role": "assistant", "content": text, "tool_calls": [call]}
    return _openai_body(message, finish, usage, cached, model)


def _anthropic_body(content: list[dict[str, Any]], stop: str, usage: tuple[int, int],
                    cache: tuple[int, int], model: str) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:10]}", "type": "message", "role": "assistant",
        "model": model, "content": content, "stop_reason": stop, "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "output_tokens": usage[1],
                  "cache_read_input_tokens": cache[0], "cache_creation_input_tokens": cache[1]},
    }


def anthropic_text(
    text: str, *, stop: str = "end_turn", usage: tuple[int, int] = (10, 5),
    cache: tuple[int, int] = (0, 0), model: str = "claude-haiku-4-5",
) -> dict[str, Any]:
    return _anthropic_body([{"type": "text", "text": text}], stop, usage, cache, model)


def anthropic_tool(name: str, input: dict[str, Any], *, call_id: str | None = None,
                   stop: str = "tool_use", usage: tuple[int, int] = (10, 5),
                   cache: tuple[int, int] = (0, 0), model: str = "claude-haiku-4-5",
                   text: str | None = None) -> dict[str, Any]:
    block = {"type": "tool_use", "id": call_id or f"toolu_{uuid.uuid4().hex[:8]}",
             "name": name, "input": input}
    content = ([{"type": "text", "text": text}] if text else []) + [block]
    return _anthropic_body(content, stop, usage, cache, model)
