"""The host side of the exec channel: JSON lines to and from the in-container agent.

One `docker exec -i` carries the agent's stdin and stdout for the container's whole life (Docker
multiplexes stdout/stderr in 8-byte-header frames over the hijacked HTTP connection), so a command
costs one JSON line each way (about a millisecond) instead of a runc exec (about 70 ms).

`exec_stream` is the fallback and recovery path without an agent: one engine exec per command,
still streamed frame by frame into bounded head + tail buffers (never `exec_run(demux=True)`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
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

from labcoat.sandboxes.execd import MARKER_ENV, Capture

log = logging.getLogger(__name__)

AGENT_SOURCE = (Path(__file__).with_name("execd.py")).read_text()
AGENT_CMD = ["python3", "-I", "-u", "-c", AGENT_SOURCE]
STDOUT, STDERR = 1, 2


class ChannelClosed(Exception):
    """The agent's exec ended (agent killed, container gone, engine gone)."""


@dataclass
class ExecSocket:
    """One engine exec with its hijacked connection as asyncio streams."""

    exec_id: str
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    response: Any = None
    """docker-py's HTTP response: held so its connection never goes back to the pool."""

    async def frames(self) -> AsyncIterator[tuple[int, bytes]]:
        """(stream, payload) until the exec's output ends."""
        while True:
            try:
                header = await self.reader.readexactly(8)
                payload = await self.reader.readexactly(int.from_bytes(header[4:8], "big"))
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            yield header[0], payload

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            self.writer.write_eof()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
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
    env: Mapping[str, str] | None = None, workdir: str | None = None,
) -> ExecSocket:
    """Create and start an exec, returning its stdio as asyncio streams."""
    exec_id, sock, response = await asyncio.to_thread(
        _start_exec, client.api, container_id, list(argv), stdin, dict(env or {}), workdir
    )
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
    return ExecSocket(exec_id, reader, writer, response)


def _start_exec(
    api: APIClient, cid: str, argv: list[str], stdin: bool, env: dict[str, str], workdir: str | None
) -> tuple[str, socket.socket, Any]:
    exec_id = api.exec_create(
        cid, argv, stdin=stdin, stdout=True, stderr=True, tty=False,
        environment=env or None, workdir=workdir,
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
    own = sock.dup()  # asyncio owns this descriptor; docker-py keeps its own
    own.setblocking(False)
    return exec_id, own, (response, raw, sock)


class Channel:
    """Request/response over the agent's stdin/stdout; several requests may be in flight."""

    def __init__(self, sock: ExecSocket, container_id: str) -> None:
        self.sock, self.container_id = sock, container_id
        self.closed = False
        self.agent_pid = 0
        self.agent_stderr: deque[str] = deque(maxlen=20)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    @classmethod
    async def start(cls, client: DockerClient, container_id: str, *,
                    timeout_s: float = 30.0) -> Channel:
        """Start the agent in the container and wait for its first answer."""
        channel = cls(await open_exec(client, container_id, AGENT_CMD, stdin=True), container_id)
        try:
            hello = await channel.request("ping", timeout_s=timeout_s)
        except (ChannelClosed, TimeoutError):
            await channel.aclose()
            raise ChannelClosed(f"the exec agent did not start: {channel.stderr_tail()}") from None
        channel.agent_pid = int(hello.get("pid") or 0)
        return channel

    async def request(self, op: str, *, timeout_s: float | None = None, **fields: Any,
                      ) -> dict[str, Any]:
        """Send one request; `ChannelClosed` if the agent is gone, `TimeoutError` if it is late."""
        if self.closed:
            raise ChannelClosed(self.stderr_tail())
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await self.sock.send(json.dumps({"id": rid, "op": op, **fields}).encode() + b"\n")
        except OSError as err:
            self._pending.pop(rid, None)
            raise ChannelClosed(f"writing to the agent failed: {err!r}") from None
        try:
            return await asyncio.wait_for(fut, timeout_s)
        finally:
            self._pending.pop(rid, None)

    def stderr_tail(self) -> str:
        return " | ".join(self.agent_stderr) or "no message from the agent"

    async def _read_loop(self) -> None:
        """Deliver answers until the stream ends. Whatever ends it (EOF, a garbled line, a
        socket error) fails every pending request at once: never a silent hang."""
        try:
            await self._read_frames()
        except Exception as err:
            # Typically the engine refusing an exec into a container being removed ("OCI
            # runtime exec failed"); a caller still waiting gets it as ChannelClosed.
            log.info("exec channel of %s broken: %s", self.container_id[:12], err)
            self.agent_stderr.append(f"channel broken: {type(err).__name__}: {err}"[:500])
        finally:
            self._fail_all()

    async def _read_frames(self) -> None:
        buffer = b""
        async for stream, payload in self.sock.frames():
            if stream == STDERR:
                self._note_stderr(payload)
                continue
            buffer += payload
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                self._deliver(line)

    def _note_stderr(self, payload: bytes) -> None:
        text = payload.decode("utf-8", "replace").strip()
        if text:
            log.debug("agent in %s: %s", self.container_id[:12], text)
            self.agent_stderr.append(text[-500:])

    def _deliver(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            msg = json.loads(line)
        except ValueError:
            raise ValueError(f"the agent wrote a line that is not JSON: {line[:200]!r}") from None
        fut = self._pending.get(msg.get("id"))
        if fut is not None and not fut.done():
            fut.set_result(msg)

    def _fail_all(self) -> None:
        self.closed = True
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ChannelClosed(self.stderr_tail()))

    async def aclose(self) -> None:
        self.closed = True
        self.sock.close_stdin()
        self.sock.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


@dataclass
class StreamedExec:
    """What `exec_stream` collected: bounded captures and the exit code."""

    stdout: Capture
    stderr: Capture
    returncode: int
    timed_out: bool


async def exec_stream(
    client: DockerClient, container_id: str, argv: Sequence[str], *, env: Mapping[str, str],
    workdir: str | None, stdin: bytes | None, timeout_s: float | None, cap: int,
) -> StreamedExec:
    """Run one command as its own engine exec (the fallback path), streaming into captures.

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
    code = info.get("ExitCode")
    return StreamedExec(out, err, 137 if timed_out or code is None else int(code), timed_out)


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


# Kills every process whose environment carries the marker (any command's when $1 is empty),
# plus the pids given after it; never PID 1 (the init) nor the container's main process.
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


def _run_sync(api: APIClient, container_id: str, argv: list[str]) -> None:
    api.exec_start(api.exec_create(container_id, argv)["Id"])


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
