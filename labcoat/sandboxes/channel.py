"""The host side of the exec channel: JSON lines to and from the in-container agent.

One `docker exec -i -u 0` carries the agent's stdin and stdout for the container's whole life
(Docker multiplexes stdout/stderr in 8-byte-header frames over the hijacked HTTP connection), so a
command costs one JSON line each way (about a millisecond) instead of a runc exec (about 70 ms).
The agent runs as root with almost no capabilities and drops every command to the sandbox user,
so nothing a command does reaches this stream (see `execd`); the reader is bounded and linear
all the same (`wire.Splitter`), and anything malformed closes the channel.

`exec_stream` is the fallback and recovery path without an agent: one engine exec per command,
as the sandbox user, still streamed frame by frame into bounded head + tail buffers (never
`exec_run(demux=True)`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import socket
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docker import APIClient, DockerClient
    from requests import Response

from labcoat.sandboxes.execd import MARKER_ENV, Capture
from labcoat.sandboxes.frames import Frames
from labcoat.sandboxes.wire import Message, Splitter, request_line

log = logging.getLogger(__name__)

SANDBOX_UID = SANDBOX_GID = 10001
SANDBOX_USER = f"{SANDBOX_UID}:{SANDBOX_GID}"
"""Every command and file operation runs as this user; labcoat's own processes run as root."""
AGENT_SOURCE = (Path(__file__).with_name("execd.py")).read_text()
SPAWND_SOURCE = (Path(__file__).with_name("spawnd.py")).read_text()
AGENT_CMD = ["python3", "-I", "-u", "-c", AGENT_SOURCE, str(SANDBOX_UID), str(SANDBOX_GID),
             SPAWND_SOURCE]
STDOUT, STDERR = 1, 2


class ChannelClosed(Exception):
    """The agent's exec ended (agent killed, container gone, engine gone)."""


@dataclass
class ExecSocket:
    """One engine exec with its hijacked connection: a transport and its `Frames`."""

    exec_id: str
    transport: asyncio.Transport
    protocol: Frames
    response: Any = None
    """docker-py's HTTP response: held so its connection never goes back to the pool."""

    @property
    def ended(self) -> str:
        """How the output ended: "" while it runs, else what the connection said."""
        return self.protocol.ended

    async def frames(self) -> AsyncIterator[tuple[int, bytes]]:
        """(stream, payload) until the exec's output ends."""
        while batch := await self.protocol.next_frames():
            for frame in batch:
                yield frame

    async def send(self, *parts: bytes) -> None:
        if self.transport.is_closing():
            raise ConnectionResetError(f"the exec's connection is closed ({self.ended})")
        for part in parts:  # written in one go: concurrent requests never interleave
            self.transport.write(part)
        await self.protocol.writable()

    def close_stdin(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.transport.write_eof()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.transport.close()
        if self.response is not None:
            response, _raw, sock = self.response
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # a pool that sees it again finds it dead
            with contextlib.suppress(Exception):
                sock.close()
                response.close()
            self.response = None


async def open_exec(
    client: DockerClient, container_id: str, argv: Sequence[str], *, stdin: bool,
    env: Mapping[str, str] | None = None, workdir: str | None = None, user: str = SANDBOX_USER,
) -> ExecSocket:
    """Create and start an exec as `user`, returning its stdio as asyncio streams."""
    exec_id, sock, early, response = await asyncio.to_thread(
        _start_exec, client.api, container_id, list(argv), stdin, dict(env or {}), workdir, user
    )
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(lambda: Frames(early), sock=sock)
    return ExecSocket(exec_id, transport, protocol, response)


def _start_exec(
    api: APIClient, cid: str, argv: list[str], stdin: bool, env: dict[str, str],
    workdir: str | None, user: str,
) -> tuple[str, socket.socket, bytes, Any]:
    exec_id = api.exec_create(
        cid, argv, stdin=stdin, stdout=True, stderr=True, tty=False,
        environment=env or None, workdir=workdir, user=user,
    )["Id"]
    # `exec_start(socket=True)` drops the HTTP response, and with it our claim on the pooled
    # connection: a later API call could then be written into the agent's stdin. Keep it.
    private: Any = api  # docker-py's own request helpers, which `exec_start` uses too
    response = private._post_json(
        private._url("/exec/{0}/start", exec_id),
        headers={"Connection": "Upgrade", "Upgrade": "tcp"},
        data={"Tty": False, "Detach": False}, stream=True,
    )
    raw = private._get_raw_response_socket(response)
    sock = getattr(raw, "_sock", raw)
    sock.settimeout(0.0)  # never read through again but here: non-blocking from now on
    early = _read_ahead(response)
    own = sock.dup()  # asyncio owns this descriptor; docker-py keeps its own
    own.setblocking(False)
    return exec_id, own, early, (response, raw, sock)


def _read_ahead(response: Response) -> bytes:
    """The exec's first bytes that http.client read along with the `101` headers.

    The response's headers are read through a buffered reader, which takes whatever the socket
    holds; a command that writes before the client gets to its headers (a fast `ls` on a busy
    machine) has its output in that buffer, not in the socket. The socket is non-blocking by now,
    so this never waits."""
    http_response: Any = response.raw._fp  # urllib3's hold on http.client's response
    try:
        return bytes(http_response.fp.read1(1 << 16) or b"")
    except (AttributeError, OSError, ValueError):
        return b""


class Channel:
    """Request/response over the agent's stdin/stdout; several requests may be in flight."""

    def __init__(self, sock: ExecSocket, container_id: str, *, max_blob: int) -> None:
        self.sock, self.container_id = sock, container_id
        self.closed = False
        self.agent_pid = 0
        self.agent_stderr: deque[str] = deque(maxlen=20)
        self._splitter = Splitter(max_blob=max_blob)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Message]] = {}
        sock.protocol.listen(self._on_frame, self._on_end)

    @classmethod
    async def start(cls, client: DockerClient, container_id: str, *, max_blob: int,
                    timeout_s: float = 30.0) -> Channel:
        """Start the agent (as root: it drops every command to the sandbox user) and wait for
        its first answer. `max_blob` bounds the bytes one reply may carry."""
        sock = await open_exec(client, container_id, AGENT_CMD, stdin=True, user="0:0")
        channel = cls(sock, container_id, max_blob=max_blob)
        try:
            hello = await channel.request("ping", timeout_s=timeout_s)
        except (ChannelClosed, TimeoutError):
            await channel.aclose()
            raise ChannelClosed(f"the exec agent did not start: {channel.stderr_tail()}") from None
        except BaseException:  # cancelled (a warm pool closing): the socket goes with it
            channel.close_now()
            raise
        channel.agent_pid = int(hello.header.get("pid") or 0)
        return channel

    async def request(self, op: str, *, timeout_s: float | None = None, blob: bytes | None = None,
                      **fields: object) -> Message:
        """Send one request (with `blob`'s bytes after it); `ChannelClosed` if the agent is
        gone or the stream broke, `TimeoutError` if the answer is late."""
        if self.closed:
            raise ChannelClosed(self.stderr_tail())
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await self.sock.send(request_line(rid, op, fields, blob), *([blob] if blob else []))
        except OSError as err:
            self._pending.pop(rid, None)
            raise ChannelClosed(f"writing to the agent failed: {err!r}") from None
        try:
            return await asyncio.wait_for(fut, timeout_s)
        finally:
            self._pending.pop(rid, None)

    def stderr_tail(self) -> str:
        return " | ".join(self.agent_stderr) or "no message from the agent"

    def _on_frame(self, stream: int, payload: bytes) -> None:
        """Deliver the answers a frame completes. Whatever breaks the stream (a broken message,
        the agent's output ending) fails every pending request at once: never a silent hang."""
        if self.closed:
            return
        if stream == STDERR:
            self._note_stderr(payload)
            return
        try:
            for msg in self._splitter.feed(payload):
                self._deliver(msg)
        except Exception as err:
            log.info("exec channel of %s broken: %s", self.container_id[:12], err)
            self.agent_stderr.append(f"channel broken: {type(err).__name__}: {err}"[:500])
            self.close_now()

    def _on_end(self, why: str) -> None:
        if not self.closed:
            self.agent_stderr.append(f"the agent's output ended: {why}")
        self._fail_all()

    def _note_stderr(self, payload: bytes) -> None:
        text = payload.decode("utf-8", "replace").strip()
        if text:
            log.debug("agent in %s: %s", self.container_id[:12], text)
            self.agent_stderr.append(text[-500:])

    def _deliver(self, msg: Message) -> None:
        rid = msg.header.get("id")
        fut = self._pending.get(rid) if isinstance(rid, int) else None
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def _fail_all(self) -> None:
        self.closed = True
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ChannelClosed(self.stderr_tail()))

    def close_now(self) -> None:
        """Close without waiting for the reader (which is cancelled)."""
        self.closed = True
        self.sock.close_stdin()
        self.sock.close()
        self._fail_all()

    async def aclose(self) -> None:
        self.close_now()


@dataclass
class StreamedExec:
    """What `exec_stream` collected: bounded captures and the exit code."""

    stdout: Capture
    stderr: Capture
    returncode: int
    timed_out: bool
    started: bool = True
    """False when the engine could not start the command at all (no such program, not
    executable, no such working directory): the exec never got a process."""


async def exec_stream(
    client: DockerClient, container_id: str, argv: Sequence[str], *, env: Mapping[str, str],
    workdir: str | None, stdin: bytes | None, timeout_s: float | None, cap: int,
) -> StreamedExec:
    """Run one command as its own engine exec as the sandbox user (the fallback path), streaming
    into captures.

    The command carries a unique `LABCOAT_EXEC` marker in its environment; at the deadline every
    process still carrying it (its whole tree, setsid'd daemons included) is killed.
    """
    token = secrets.token_hex(8)
    sock = await open_exec(client, container_id, argv, stdin=stdin is not None,
                           env={**env, MARKER_ENV: token}, workdir=workdir)
    out, err = Capture(cap), Capture(cap)
    try:
        if stdin is not None:
            await sock.send(stdin)
            sock.close_stdin()
        timed_out = not await _pump_frames(sock, out, err, timeout_s)
    finally:
        sock.close()
    if timed_out:
        await kill_marked(client, container_id, token)
    info = await asyncio.to_thread(client.api.exec_inspect, sock.exec_id)
    code = 137 if timed_out or info.get("ExitCode") is None else int(info["ExitCode"])
    started = bool(info.get("Pid", 1)) or code not in (126, 127)  # the engine's own report
    return StreamedExec(out, err, code, timed_out, started)


async def _pump_frames(sock: ExecSocket, out: Capture, err: Capture, timeout_s: float | None,
                       ) -> bool:
    """True when the output ended before the deadline."""

    async def pump() -> None:
        async for stream, payload in sock.frames():
            (err if stream == STDERR else out).add(payload)

    try:
        await asyncio.wait_for(pump(), timeout_s)
    except TimeoutError:
        return False
    return True


# Run as the sandbox user (whose processes' environments it can read, and whom alone it can
# signal): kills every process whose environment carries the marker (any command's when $1 is
# empty), plus the pids given after it.
_KILL_SCRIPT = """
me=$$; tag=$1; shift
for round in 1 2 3; do
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = 1 ] || [ "$p" = "$me" ] && continue
    if tr '\\0' '\\n' < "$d/environ" 2>/dev/null | grep -q "^LABCOAT_EXEC=$tag"; then
      kill -9 "$p" 2>/dev/null
    fi
  done
done
[ $# -gt 0 ] && kill -9 "$@" 2>/dev/null
exit 0
"""


async def kill_marked(client: DockerClient, container_id: str, token: str = "", *pids: int) -> None:
    """SIGKILL the marked command's tree (every command's with no token), from outside it."""
    argv = ["sh", "-c", _KILL_SCRIPT, "sh", token, *map(str, pids)]
    with contextlib.suppress(Exception):
        await asyncio.to_thread(_run_sync, client.api, container_id, argv)


# `kill -1` as the sandbox user reaches every process of that user but the caller itself, and
# nothing of root's (the init, the agent); it fails once there is nobody left to signal.
_KILL_USER_SCRIPT = "for i in $(seq 200); do kill -9 -1 2>/dev/null || exit 0; done"


async def kill_user(client: DockerClient, container_id: str) -> None:
    """SIGKILL every process of the sandbox user (the fallback path's `kill_all`)."""
    argv = ["sh", "-c", _KILL_USER_SCRIPT]
    await asyncio.to_thread(_run_sync, client.api, container_id, argv)


def _run_sync(api: APIClient, container_id: str, argv: list[str]) -> None:
    api.exec_start(api.exec_create(container_id, argv, user=SANDBOX_USER)["Id"])
