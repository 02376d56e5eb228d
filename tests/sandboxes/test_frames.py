"""Docker's multiplexed exec stream cut into frames (`labcoat.sandboxes.frames`), over a real
socket pair (no engine needed)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket

from labcoat.sandboxes.frames import Frames


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


async def connected(early: bytes) -> tuple[asyncio.Transport, Frames, socket.socket]:
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(lambda: Frames(early), sock=ours)
    return transport, protocol, theirs


def test_frames_cut_anywhere_arrive_whole_in_order_read_ahead_bytes_first() -> None:
    rng = random.Random(7)
    frames = [(rng.choice((1, 2)), rng.randbytes(rng.randrange(0, 70000))) for _ in range(60)]
    wire = b"".join(frame(s, p) for s, p in frames)
    early, rest = wire[:13], wire[13:]  # what http.client read along with the headers

    async def scenario() -> tuple[list[tuple[int, bytes]], list[str]]:
        transport, protocol, theirs = await connected(early)
        got: list[tuple[int, bytes]] = []
        ended: list[str] = []
        protocol.listen(lambda s, p: got.append((s, p)), ended.append)
        at = 0
        while at < len(rest):
            step = rng.randrange(1, 9000)
            theirs.sendall(rest[at : at + step])
            at += step
            await asyncio.sleep(0)
        theirs.sendall(frame(1, b"cut")[:5])  # a frame that never ends
        theirs.close()
        for _ in range(200):
            if ended:
                break
            await asyncio.sleep(0.01)
        transport.close()
        return got, ended

    got, ended = asyncio.run(scenario())
    assert got == frames
    assert ended == ["end of stream (5 bytes into a frame)"]


def test_frames_without_a_sink_wait_in_a_bounded_backlog_and_all_come() -> None:
    """Nobody takes the frames for a while: reading pauses once the backlog is full (the rest
    waits in the socket), and every frame still comes, in order."""
    payloads = [f"frame {i} ".encode() * 10 for i in range(20000)]  # about 2.5 MB

    async def scenario() -> tuple[list[bytes], int, bool]:
        transport, protocol, theirs = await connected(b"")
        theirs.setblocking(False)
        data = memoryview(b"".join(frame(1, p) for p in payloads))

        def push() -> None:
            nonlocal data
            with contextlib.suppress(BlockingIOError):
                while data:
                    data = data[theirs.send(data) :]

        for _ in range(50):  # the consumer is busy elsewhere
            push()
            await asyncio.sleep(0)
        held, reading = len(protocol.backlog), transport.is_reading()
        got: list[bytes] = []
        while len(got) < len(payloads):
            push()
            got += [p for _, p in await protocol.next_frames()]
        transport.close()
        theirs.close()
        return got, held, reading

    got, held, reading = asyncio.run(scenario())
    assert got == payloads
    assert not reading and held < Frames.BACKLOG + (256 << 10) // 100  # at most one read more
