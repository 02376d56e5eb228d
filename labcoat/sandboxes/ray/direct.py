"""A direct line for commands: the driver's `exec` reaches a node's sandbox without a Ray call.

A Ray actor call costs about a millisecond even on one machine (a task submitted, run on the
actor's event loop, its reply sent back), as much again as the command `true` itself. So the
actor of each sandbox also listens on a TCP port of its node (on the address Ray itself uses to
reach the node; an ephemeral port), and the driver sends the sandbox's commands there: one JSON
line plus the stdin bytes per request, the result's fields plus its two outputs as raw blobs per
reply (the exec channel's format, `labcoat.sandboxes.wire`: bounded and linear).

Who may use it: whoever presents the sandbox's token first, 32 random bytes the actor makes and
hands to the driver in the answer to `open` (through Ray; never logged, never in a repr).
Anything else is closed unanswered. The line carries what a Ray call would carry (commands,
their environments and outputs), unencrypted like Ray's own traffic; API keys never enter a
sandbox, so they never cross it.

Files, workspaces and closing stay Ray calls. When the line cannot be opened (a firewall between
the driver and the node's ports), commands go through Ray calls too. When it breaks during a
command, the outcome is unknown, as when a Ray call fails: the caller learns it as a
`ConnectionError` (see `RaySandbox.exec`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import logging
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping

from pydantic import BaseModel, ConfigDict, Field

from labcoat.sandboxes.base import ExecResult
from labcoat.sandboxes.ray.wire import LineAddress
from labcoat.sandboxes.wire import Message, Splitter, WireError

log = logging.getLogger(__name__)

CONNECT_S = 3.0
"""How long opening the line (connect and token) may take before commands use Ray calls."""
HELLO_S = 10.0
"""How long the node waits for a connection's token."""
MAX_REQUEST_LINE = 64 << 20
"""A request's header: argv and environment (a long `bash -c` script fits)."""
MAX_STDIN = 1 << 40
"""The driver's stdin bytes: its own data; a bound, not a policy."""
CHUNK = 1 << 18


class ExecCall(BaseModel):
    """One command, as the driver sends it (the stdin bytes follow as a blob when `stdin`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int
    argv: str | list[str]
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    timeout_s: float | None = None
    stdin: bool = False


def reply_bound(output_cap: int) -> int:
    """The most one reply can carry: each stream keeps `output_cap` bytes at its head and as
    many at its tail, and a byte that is not UTF-8 comes back as U+FFFD, 3 bytes."""
    return 2 * 3 * (2 * output_cap + 256) + (1 << 16)


Runner = Callable[[ExecCall, "bytes | None"], Awaitable[ExecResult]]
"""Runs one command on the node's sandbox."""


def encode(header: dict[str, object], blobs: list[bytes]) -> list[bytes]:
    """A message as the pieces to write: its header line announcing `blobs`, then the blobs."""
    line = json.dumps({**header, "blobs": [len(b) for b in blobs]}).encode() + b"\n"
    return [line, *blobs]


class Server:
    """The node's end: serves one sandbox's commands to connections that show the token."""

    def __init__(self, run: Runner) -> None:
        self.run = run
        self.token = secrets.token_hex(32)
        self.server: asyncio.Server | None = None
        self.host, self.port = "", 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def start(cls, host: str, run: Runner) -> Server:
        line = cls(run)
        line.server = await asyncio.start_server(line._serve, host=host, port=0)
        line.host, line.port = host, line.server.sockets[0].getsockname()[1]
        return line

    def address(self) -> LineAddress:
        return LineAddress(host=self.host, port=self.port, token=self.token)

    async def close(self) -> None:
        """Stop listening, cut every connection, cancel the commands still answering."""
        if self.server is not None:
            self.server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            hello = await asyncio.wait_for(reader.readline(), HELLO_S)
            if not hmac.compare_digest(hello.rstrip(b"\n"), self.token.encode()):
                return
            splitter = Splitter(max_line=MAX_REQUEST_LINE, max_blob=MAX_STDIN)
            while data := await reader.read(CHUNK):
                for msg in splitter.feed(data):
                    task = asyncio.get_running_loop().create_task(self._answer(msg, writer))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        except (OSError, ValueError, WireError, TimeoutError):
            pass  # a stranger, a broken stream, or the driver gone: this connection ends
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, msg: Message, writer: asyncio.StreamWriter) -> None:
        rid = msg.header.get("id")
        try:
            call = ExecCall.model_validate(msg.header)
            result = await self.run(call, msg.blobs[0] if call.stdin and msg.blobs else None)
        except Exception as err:  # SandboxUnavailable above all: the driver raises it as such
            pieces = encode({"id": rid, "error": f"{type(err).__name__}: {err}"}, [])
        else:
            fields = result.model_dump(mode="json", exclude={"stdout", "stderr"})
            pieces = encode({"id": rid, **fields},
                            [result.stdout.encode(), result.stderr.encode()])
        if writer.is_closing():
            return
        writer.writelines(pieces)
        with contextlib.suppress(ConnectionError):
            await writer.drain()


class Line:
    """The driver's end of one sandbox's line; several commands may be in flight."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 max_reply: int, where: str) -> None:
        self.reader, self.writer, self.where = reader, writer, where
        self.splitter = Splitter(max_blob=max_reply)
        self.closed = ""
        """Why the line ended ("" while it is up)."""
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Message]] = {}
        self._task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, address: LineAddress, *, max_reply: int, where: str) -> Line | None:
        """The line, or None when the node's port cannot be reached (commands then go
        through Ray calls)."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(address.host, address.port), CONNECT_S)
        except (OSError, TimeoutError) as err:
            log.info("%s: no direct line (%s); its commands go through Ray calls", where, err)
            return None
        _keep_alive(writer)
        writer.write(address.token.encode() + b"\n")
        return cls(reader, writer, max_reply, where)

    async def exec(self, call: Mapping[str, object], stdin: bytes | None,
                   timeout_s: float | None) -> ExecResult:
        """Run one command; `ConnectionError` when the line broke (outcome unknown),
        `TimeoutError` past `timeout_s`, `RuntimeError` with the node's words when the
        node's sandbox failed it."""
        if self.closed:
            raise ConnectionError(f"the direct line to {self.where} is closed ({self.closed})")
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            header = {"id": rid, **call, "stdin": stdin is not None}
            self.writer.writelines(encode(header, [stdin] if stdin is not None else []))
            await self.writer.drain()
            msg = await asyncio.wait_for(fut, timeout_s)
        finally:
            self._pending.pop(rid, None)
        return _result(msg)

    async def _read(self) -> None:
        why = "the node closed it"
        try:
            while data := await self.reader.read(CHUNK):
                for msg in self.splitter.feed(data):
                    fut = self._pending.get(msg.header.get("id"))  # type: ignore[arg-type]
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
        except (OSError, WireError) as err:
            why = f"{type(err).__name__}: {err}"
        finally:
            self.closed = why
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(f"the direct line to {self.where} "
                                                      f"broke: {why}"))
            self.writer.close()

    async def aclose(self) -> None:
        self.closed = self.closed or "closed by labcoat"
        self.writer.close()
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task


KEEPALIVE = {"TCP_KEEPIDLE": 5, "TCP_KEEPINTVL": 2, "TCP_KEEPCNT": 5}
"""A node that vanishes without closing its connections (powered off, cut off) is noticed within
about 15 s, as Ray's own health checks notice it, even while a command runs for hours."""


def _keep_alive(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in KEEPALIVE.items():
            if hasattr(socket, name):  # Linux names; elsewhere the system's defaults
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def _result(msg: Message) -> ExecResult:
    header = dict(msg.header)
    header.pop("id", None)
    if "error" in header:
        raise RuntimeError(str(header["error"]))
    if len(msg.blobs) != 2:
        raise ConnectionError(f"a reply with {len(msg.blobs)} outputs, not 2")
    out, err = (b.decode("utf-8", "replace") for b in msg.blobs)
    return ExecResult.model_validate({**header, "stdout": out, "stderr": err})
