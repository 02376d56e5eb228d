"""The Ray backend's direct line for commands (`labcoat.sandboxes.ray.direct`), served here by a
real Docker sandbox on 127.0.0.1, without a cluster: what it carries, and whom it refuses. The
cluster tests run the whole conformance suite through it (tests/sandboxes/test_conformance.py,
backend `ray`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from labcoat.sandboxes import DockerProvider
from labcoat.sandboxes.base import ExecResult
from labcoat.sandboxes.ray.direct import ExecCall, Line, Server, reply_bound
from labcoat.sandboxes.ray.wire import LineAddress

from .conftest import new_run_id

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def box(run: Any, make_spec: Any) -> Iterator[Any]:
    provider = DockerProvider(new_run_id("line"))
    sandbox = run(provider.create(make_spec(provider.run_id)))
    yield sandbox
    run(provider.aclose())


def serve(box: Any) -> Any:
    async def run_call(call: ExecCall, stdin: bytes | None) -> ExecResult:
        result: ExecResult = await box.exec(call.argv, cwd=call.cwd, env=call.env,
                                            timeout_s=call.timeout_s, stdin=stdin)
        return result

    return Server.start("127.0.0.1", run_call)


async def open_line(server: Server, output_cap: int) -> Line:
    line = await Line.open(server.address(), max_reply=reply_bound(output_cap), where="test")
    assert line is not None
    return line


def test_a_command_on_the_line_is_the_sandboxs_own(run: Any, box: Any) -> None:
    async def scenario() -> tuple[ExecResult, ExecResult, ExecResult, ExecResult]:
        server = await serve(box)
        line = await open_line(server, box.spec.output_cap_bytes)
        try:
            script = {"argv": "cat; printf '\\033[2J\\377' >&2; echo \"$X in $PWD\"; exit 3",
                      "cwd": "/tmp", "env": {"X": "hello"}, "timeout_s": 30}
            shown = await line.exec(script, b"from stdin\n", None)
            late = await line.exec({"argv": ["sleep", "5"], "timeout_s": 0.5}, None, 30)
            empty = await line.exec({"argv": ["cat"]}, b"", 30)
            flood = {"argv": "f() { head -c 3000000 /dev/zero | tr '\\0' '\\377'; }; f; f >&2"}
            worst = await line.exec(flood, None, 60)  # every byte comes back 3 bytes long
            return shown, late, empty, worst
        finally:
            await line.aclose()
            await server.close()

    shown, late, empty, worst = run(scenario())
    assert shown.returncode == 3 and shown.stdout == "from stdin\nhello in /tmp\n"
    assert shown.stderr == "\x1b[2J\ufffd"  # raw bytes of the command, decoded as everywhere
    assert late.timed_out and not late.ok
    assert empty.returncode == 0 and empty.stdout == ""
    assert worst.returncode == 0 and worst.truncated and worst.stderr.startswith("\ufffd" * 100)


def test_a_connection_without_the_token_is_closed_unanswered(run: Any, box: Any) -> None:
    """Whoever reaches the node's port but has not the token gets nothing, and runs nothing."""

    async def scenario() -> tuple[bytes, ExecResult]:
        server = await serve(box)
        try:
            reader, writer = await asyncio.open_connection(server.host, server.port)
            request = {"id": 1, "argv": ["touch", "/workspace/intruder"], "stdin": False,
                       "blobs": []}
            writer.write(b"0" * 64 + b"\n" + json.dumps(request).encode() + b"\n")
            answer = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            return answer, await box.exec(["ls", "/workspace"])
        finally:
            await server.close()

    answer, listing = run(scenario())
    assert answer == b""
    assert "intruder" not in listing.stdout


def test_a_line_that_breaks_fails_the_command_in_flight_at_once(run: Any, box: Any) -> None:
    """The node's end going away (its node lost) fails a running command with ConnectionError,
    which the Ray sandbox reports as an infrastructure failure; it never waits for the
    command's own timeout."""

    async def scenario() -> tuple[BaseException, float]:
        server = await serve(box)
        line = await open_line(server, box.spec.output_cap_bytes)
        try:
            pending = asyncio.ensure_future(line.exec({"argv": ["sleep", "60"]}, None, None))
            await asyncio.sleep(0.5)
            started = asyncio.get_running_loop().time()
            await server.close()
            with pytest.raises(ConnectionError) as caught:
                await asyncio.wait_for(pending, 20)
            return caught.value, asyncio.get_running_loop().time() - started
        finally:
            await line.aclose()
            await box.kill_all()

    err, waited = run(scenario())
    assert "broke" in str(err) and waited < 10


def test_no_line_when_the_nodes_port_cannot_be_reached(run: Any) -> None:
    """Then the Ray sandbox sends its commands as Ray calls."""

    async def scenario() -> Line | None:
        server = await Server.start("127.0.0.1", lambda call, stdin: asyncio.sleep(0))  # type: ignore[arg-type,return-value]
        address = server.address()
        await server.close()
        await asyncio.sleep(0.1)
        return await Line.open(LineAddress(host=address.host, port=address.port,
                                           token=address.token), max_reply=1024, where="test")

    assert run(scenario()) is None
