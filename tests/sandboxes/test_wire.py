"""The exec channel's wire format on the host: whole messages from any chunking, bounded memory,
and a clear `WireError` for anything malformed (which closes the channel)."""

from __future__ import annotations

import json
import os

import pytest

from labcoat.sandboxes.wire import ExecReply, Message, Splitter, WireError, parse_reply


def frame(header: dict[str, object], *blobs: bytes) -> bytes:
    if blobs:
        header = {**header, "blobs": [len(b) for b in blobs]}
    return json.dumps(header).encode() + b"\n" + b"".join(blobs)


def test_messages_survive_any_chunking() -> None:
    big = os.urandom(200_000)
    stream = (frame({"id": 1}) + frame({"id": 2}, b"out\n", b"") + frame({"id": 3}, big)
              + frame({"id": 4}, b"x\ny\n"))
    for piece in (1, 7, 4096, 1 << 20, len(stream)):
        splitter, got = Splitter(max_blob=4 << 20), []
        for at in range(0, len(stream), piece):
            got.extend(splitter.feed(stream[at : at + piece]))
        assert [m.header["id"] for m in got] == [1, 2, 3, 4]
        assert got[1].blobs == [b"out\n", b""] and got[2].blobs == [big]
        assert got[3].blobs == [b"x\ny\n"] and got[0].blobs == []


def test_a_stream_without_newlines_is_refused_in_bounded_memory() -> None:
    splitter = Splitter(max_line=1 << 20, max_blob=1 << 20)
    chunk, fed = b"x" * (64 << 10), 0
    with pytest.raises(WireError, match="without a newline"):
        while fed < 300_000_000:  # the quoted attack: 300 MB without a newline
            splitter.feed(chunk)
            fed += len(chunk)
            assert len(splitter._line) <= 1 << 20
    assert fed <= (1 << 20) + len(chunk)  # refused at the limit, not at the end


@pytest.mark.parametrize(("line", "says"), [
    (b"junk\n", "not JSON"),
    (b"[1, 2]\n", "not an object"),
    (b'{"id": 1, "blobs": [-1]}\n', "bad blob sizes"),
    (b'{"id": 1, "blobs": "10"}\n', "bad blob sizes"),
    (b'{"id": 1, "blobs": [99999999999]}\n', "announced 99999999999 bytes"),
])
def test_malformed_lines_are_wire_errors(line: bytes, says: str) -> None:
    with pytest.raises(WireError, match=says):
        Splitter(max_blob=1 << 20).feed(line)


def test_replies_are_validated() -> None:
    good = Message({"id": 1, "rc": 0, "timed_out": False, "oom": False, "truncated": False,
                    "dur": 0.1}, [b"", b""])
    assert parse_reply(ExecReply, good, blobs=2).oom_kills == 0
    with pytest.raises(WireError, match="malformed"):  # the old `KeyError: 'rc'`
        parse_reply(ExecReply, Message({"id": 2}, [b"", b""]), blobs=2)
    with pytest.raises(WireError, match="blobs"):
        parse_reply(ExecReply, Message(good.header, []), blobs=2)
