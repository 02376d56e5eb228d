"""Docker's multiplexed exec stream, split into frames as the bytes arrive (an asyncio protocol).

An engine exec without a TTY sends its stdout and stderr over one hijacked connection, each
write as a frame: an 8-byte header (stream: 1 stdout, 2 stderr; three zero bytes; the payload's
length, big-endian) and the payload. `Frames` cuts them out in `data_received` and hands each to
its sink in the same turn of the event loop, so the exec channel's reply reaches the request
waiting for it without a reader task between them (`channel.Channel`); until a sink is set,
or for a consumer that pulls (`channel.exec_stream`), frames wait in a bounded backlog.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

Sink = Callable[[int, bytes], None]
"""Takes each frame (stream, payload) as it arrives."""


class Frames(asyncio.Protocol):
    """The exec's output split into Docker's frames (8-byte header: stream, 0, 0, 0, big-endian
    length; then the payload) as the bytes arrive. Each frame goes to the sink at once, in the
    same turn of the event loop (a reply reaches its caller without a reader task in between);
    until there is a sink, frames wait in `backlog` (at most `BACKLOG`: then reading pauses)."""

    BACKLOG = 64

    def __init__(self, early: bytes) -> None:
        self.buf = bytearray(early)  # the bytes read ahead come before the socket's
        self.backlog: deque[tuple[int, bytes]] = deque()
        self.sink: Sink | None = None
        self.on_end: Callable[[str], None] | None = None
        self.ended = ""
        """How the output ended: "" while it runs, else what the connection said."""
        self.transport: asyncio.Transport | None = None
        self._wake: asyncio.Future[None] | None = None  # frames() waiting for more
        self._writable: asyncio.Future[None] | None = None  # set while writing is paused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.data_received(b"")

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while len(buf) >= 8:
            end = 8 + int.from_bytes(buf[4:8], "big")
            if len(buf) < end:
                break
            frame = buf[0], bytes(buf[8:end])
            del buf[:end]
            if self.sink is not None:
                self.sink(*frame)
            else:
                self.backlog.append(frame)
        if self.sink is None and len(self.backlog) >= self.BACKLOG and self.transport:
            self.transport.pause_reading()  # frames() resumes it
        self._wake_up()

    def eof_received(self) -> bool:
        self._end(f"end of stream ({len(self.buf)} bytes into a frame)")
        return True  # the agent's stdin may still be written to

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(f"{type(exc).__name__}: {exc}" if exc else "connection closed")
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def pause_writing(self) -> None:
        self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    async def writable(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        if self._writable is not None:
            await self._writable

    def listen(self, sink: Sink, on_end: Callable[[str], None]) -> None:
        """From now on every frame goes to `sink` (the waiting ones first), and its end to
        `on_end` (at once if it has ended)."""
        self.sink, self.on_end = sink, on_end
        while self.backlog:
            sink(*self.backlog.popleft())
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        if self.ended:
            on_end(self.ended)

    async def next_frames(self) -> list[tuple[int, bytes]]:
        """The frames that arrived (waiting for some); [] once the output ended."""
        while not self.backlog and not self.ended:
            self._wake = asyncio.get_running_loop().create_future()
            await self._wake
        frames = list(self.backlog)
        self.backlog.clear()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        return frames

    def _end(self, why: str) -> None:
        if not self.ended:
            self.ended = why
            if self.on_end is not None:
                self.on_end(why)
        self._wake_up()

    def _wake_up(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
