"""What a command can do to the exec channel: nothing. The agent runs as root, non-dumpable, and
every command as uid 10001, so forged replies, junk, floods and kills from inside never reach it;
a stream that breaks the wire format all the same closes the channel quickly, in bounded memory;
large files move fast and whole."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labcoat.sandboxes import DockerProvider
from labcoat.sandboxes.channel import Channel, ChannelClosed, open_exec

from .conftest import new_run_id


@pytest.fixture(scope="module")
def provider(run: Any, docker_client: Any) -> Iterator[DockerProvider]:
    prov = DockerProvider(new_run_id("hostile"))
    run(prov.start())
    yield prov
    run(prov.aclose())


@pytest.fixture(scope="module")
def box(provider: DockerProvider, run: Any, make_spec: Any) -> Iterator[Any]:
    sandbox = run(provider.create(make_spec(provider.run_id, subtask_id="attacks")))
    yield sandbox
    run(sandbox.aclose())


ATTACKS = {
    "forged reply": "printf '{\"id\":2}\\n' > /proc/$PPID/fd/1",
    "forged result": "printf '{\"id\":9,\"rc\":0,\"timed_out\":false}\\n' > /proc/$PPID/fd/1",
    "junk line": "printf 'junk\\n' > /proc/$PPID/fd/1",
    "300 MB without a newline": "head -c 300000000 /dev/zero | tr '\\0' x > /proc/$PPID/fd/1",
    "pkill -9 -f python3": "pkill -9 -f python3",
    "SIGSTOP the agent": "kill -STOP $PPID",
    "kill -9 -1": "kill -9 -1",
    "ptrace the agent": "cat /proc/$PPID/environ /proc/1/environ",
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_commands_cannot_reach_the_channel(run: Any, box: Any, attack: str) -> None:
    agent = box._channel.agent_pid
    res = run(box.exec(ATTACKS[attack] + "; echo after", timeout_s=60))
    assert not res.timed_out and res.duration_s < 30
    # pkill -f python3 also matches this very command line, and kill -9 -1 reaches every
    # process of the sandbox user: the command kills itself, and that is all it gets
    assert "after" in res.stdout or attack in ("pkill -9 -f python3", "kill -9 -1")
    if "/proc/$PPID" in ATTACKS[attack]:
        assert "Permission denied" in res.stderr
    assert box.uses_channel and box._channel.agent_pid == agent  # the same agent, alive
    ok = run(box.exec("echo fine; exit 3"))
    assert (ok.returncode, ok.stdout) == (3, "fine\n")


def test_a_command_that_leaves_its_input_unread_costs_nothing(run: Any, box: Any) -> None:
    """The agent feeds stdin while the command has already exited: the write fails (EPIPE)
    and that is the command's business, never a SIGPIPE that ends the agent."""
    agent = box._channel.agent_pid
    for _ in range(3):
        res = run(box.exec(["true"], stdin=b"x" * (8 << 20)))
        assert res.returncode == 0 and not res.timed_out
    assert box.uses_channel and box._channel.agent_pid == agent


def test_the_agent_is_root_and_the_commands_have_nothing(run: Any, box: Any) -> None:
    agent = box._channel.agent_pid
    me = run(box.exec("grep -E '^(Uid|Gid|Groups|CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs):' "
                      f"/proc/self/status; ps -o uid= -p {agent},1"))
    fields = dict(line.split(":", 1) for line in me.stdout.splitlines() if ":" in line)
    assert fields["Uid"].split() == ["10001"] * 4 and fields["Gid"].split() == ["10001"] * 4
    assert fields["Groups"].strip() == ""
    for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
        assert int(fields[cap], 16) == 0, cap
    assert fields["NoNewPrivs"].strip() == "1"
    owners = [line.split()[0] for line in me.stdout.splitlines() if ":" not in line]
    assert owners == ["0", "0"]  # the init and the agent
    # the command's parent starts commands as the sandbox user, and is closed to them too
    starter = run(box.exec("ps -o args= -p $PPID; ls /proc/$PPID/fd 2>&1; "
                           "grep -E '^(State|SigIgn)' /proc/$PPID/status"))
    assert starter.stdout.startswith("labcoat-spawnd") and "Permission denied" in starter.stdout


def _peak_growth_mb(before_kb: int) -> float:
    return (_status_kb("VmHWM") - before_kb) / 1024


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def test_a_stream_that_breaks_the_format_closes_the_channel_fast(run: Any, box: Any,
                                                                 docker_client: Any) -> None:
    """An agent gone wrong (here a stand-in that floods 300 MB without a newline)."""
    flood = ["sh", "-c", "head -c 300000000 /dev/zero | tr '\\0' x; sleep 60"]

    async def scenario() -> None:
        sock = await open_exec(docker_client, box.id, flood, stdin=True)
        channel = Channel(sock, box.id, max_blob=1 << 20)
        try:
            with pytest.raises(ChannelClosed, match="without a newline"):
                await channel.request("ping", timeout_s=60)
        finally:
            await channel.aclose()

    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kb("VmRSS")
    run(scenario())
    assert _peak_growth_mb(before) < 50


@pytest.fixture(scope="module", params=["channel", "exec"])
def roomy(request: pytest.FixtureRequest, run: Any, make_spec: Any) -> Iterator[Any]:
    """A sandbox with room for a 100 MiB file in /tmp, on both paths."""
    prov = DockerProvider(new_run_id("big"), exec_channel=request.param == "channel")
    sandbox = run(prov.create(make_spec(prov.run_id, tmpfs_mb=160, memory_mb=768)))
    yield sandbox
    run(prov.aclose())


def test_a_100_mib_read_file_comes_back_whole(run: Any, roomy: Any) -> None:
    made = run(roomy.exec("head -c 104857600 /dev/urandom > /workspace/big.bin && "
                          "cp /workspace/big.bin /tmp/big.bin && sha256sum /tmp/big.bin",
                          timeout_s=120))
    want = made.stdout.split()[0]
    for path in ("/workspace/big.bin", "/tmp/big.bin"):  # the host folder, then the container
        data = run(roomy.read_file(path, max_bytes=128 << 20))
        assert len(data) == 100 << 20 and hashlib.sha256(data).hexdigest() == want, path
    run(roomy.exec("rm -f /tmp/big.bin /workspace/big.bin"))


def test_a_50_mib_write_file_lands_whole_as_the_sandbox_user(run: Any, roomy: Any) -> None:
    blob = bytes(range(256)) * (200 << 10)
    run(roomy.write_file("/tmp/in.bin", blob))
    got = run(roomy.exec("sha256sum /tmp/in.bin; stat -c %u:%g /tmp/in.bin; rm /tmp/in.bin"))
    assert got.stdout.split()[0] == hashlib.sha256(blob).hexdigest()
    assert got.stdout.split()[-1] == "10001:10001"


def test_commands_run_concurrently_over_one_channel(run: Any, box: Any) -> None:
    async def many() -> list[str]:
        results = await asyncio.gather(*(box.exec(f"sleep 0.2; echo {i}") for i in range(8)))
        return [r.stdout.strip() for r in results]

    assert run(many()) == [str(i) for i in range(8)]
