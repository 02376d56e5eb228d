"""Docker-specific behaviour: bad input, hardening as the engine sees it, failures under a command,
the warm pool, the orphan sweep and bounded host memory."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labcoat.errors import ConfigError, SandboxUnavailable
from labcoat.sandboxes import DockerProvider, Mount
from labcoat.sandboxes.cleanup import cleanup_command

from .conftest import new_run_id

# Docker tests are marked by their fixtures (tests/conftest.py); the engine-down test needs none.


@pytest.fixture(scope="module")
def provider(run: Any, docker_client: Any) -> Iterator[DockerProvider]:
    prov = DockerProvider(new_run_id("docker"))
    run(prov.start())
    yield prov
    run(prov.aclose())


def containers_of(client: Any, run_id: str) -> list[str]:
    found = client.api.containers(all=True, filters={"label": f"labcoat.run_id={run_id}"})
    return [c["Id"] for c in found]


# ---- bad input -------------------------------------------------------------------------------


def test_engine_down_is_clear_and_fast(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/labcoat-test.sock")
    messages = []
    with warnings.catch_warnings(record=True) as caught:  # and no socket left unclosed
        warnings.simplefilter("always", ResourceWarning)
        start = time.monotonic()
        attempts = (lambda: run(DockerProvider("never").start()), lambda: cleanup_command(None))
        for attempt in attempts:
            try:
                attempt()
            except SandboxUnavailable as err:
                messages.append(str(err))
        elapsed = time.monotonic() - start
        gc.collect()
    assert len(messages) == 2 and elapsed < 10  # each attempt well under 5 s
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    for text in messages:
        assert "/nonexistent/labcoat-test.sock" in text and "start" in text


def test_missing_image_names_it_and_the_fix(run: Any, provider: DockerProvider, make_spec: Any,
                                            docker_client: Any) -> None:
    spec = make_spec(provider.run_id, image="labcoat-sandbox:no-such-tag")
    with pytest.raises(SandboxUnavailable) as err:
        run(provider.create(spec))
    assert "labcoat-sandbox:no-such-tag" in str(err.value)
    assert "labcoat sandbox build" in str(err.value)
    assert containers_of(docker_client, provider.run_id) == []


def test_gpus_on_a_host_without_them_fail_before_any_container(
        run: Any, provider: DockerProvider, make_spec: Any, docker_client: Any) -> None:
    with pytest.raises(SandboxUnavailable, match="GPU"):
        run(provider.create(make_spec(provider.run_id, gpus=1)))
    assert containers_of(docker_client, provider.run_id) == []


def test_writable_mount_needs_the_unsafe_flag(run: Any, provider: DockerProvider, make_spec: Any,
                                             tmp_path: Path, caplog: Any) -> None:
    tmp_path.chmod(0o777)
    mount = Mount(source=tmp_path, target="/data", read_only=False)
    with pytest.raises(ConfigError, match="unsafe_writable_mounts"):
        run(provider.create(make_spec(provider.run_id, mounts=(mount,))))
    spec = make_spec(provider.run_id, mounts=(mount,), unsafe_writable_mounts=True)
    with caplog.at_level(logging.WARNING, logger="labcoat.sandboxes"):
        box = run(provider.create(spec))
    try:
        assert "UNSAFE: writable host mount" in caplog.text
        assert run(box.exec("touch /data/made-inside")).ok
        assert (tmp_path / "made-inside").exists()
    finally:
        run(box.aclose())


# ---- hardening as the engine records it -------------------------------------------------------


def test_container_config_is_hardened(run: Any, provider: DockerProvider, make_spec: Any,
                                      docker_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-canary-cfg-42")
    spec = make_spec(provider.run_id, subtask_id="it001-02", env={"LABCOAT_SEED": "3"})
    box = run(provider.create(spec))
    try:
        info = docker_client.api.inspect_container(box.id)
    finally:
        run(box.aclose())
    labels, host, cfg = info["Config"]["Labels"], info["HostConfig"], info["Config"]
    assert labels["labcoat.run_id"] == provider.run_id
    assert labels["labcoat.subtask_id"] == "it001-02"
    assert labels["labcoat.pid"] == str(os.getpid()) and labels["labcoat.host"] == os.uname()[1]
    # only the exec agent's: commands run as 10001 with none at all (see test_conformance)
    assert host["CapDrop"] == ["ALL"] and not host["Privileged"]
    assert sorted(host["CapAdd"]) == ["KILL", "SETGID", "SETPCAP", "SETUID"]
    assert host["SecurityOpt"] == ["no-new-privileges:true"] and host["ReadonlyRootfs"]
    assert host["Memory"] == host["MemorySwap"] == 512 << 20
    assert host["PidsLimit"] == 128 and host["NanoCpus"] == 10**9 and host["Init"]
    assert host["NetworkMode"] == "none" and host["LogConfig"]["Config"]["max-size"] == "1m"
    assert cfg["User"] == "0:0"  # the init and the agent; every command runs as 10001
    assert not any("canary" in e or "LABCOAT_SEED" in e for e in cfg["Env"] or [])
    assert not any("docker.sock" in b for b in host["Binds"] or [])


# ---- failures under a command ----------------------------------------------------------------


def test_container_dying_mid_command_is_infrastructure(run: Any, provider: DockerProvider,
                                                      make_spec: Any, docker_client: Any) -> None:
    box = run(provider.create(make_spec(provider.run_id)))

    async def kill_soon() -> None:
        await asyncio.sleep(0.5)
        await asyncio.to_thread(docker_client.api.kill, box.id)

    async def scenario() -> None:
        killer = asyncio.create_task(kill_soon())
        try:
            await box.exec("sleep 30", timeout_s=60)
        finally:
            await killer

    try:
        with pytest.raises(SandboxUnavailable, match="infrastructure failure"):
            run(scenario())
    finally:
        run(box.aclose())


def test_the_channel_broken_from_outside_is_infrastructure_then_recovers(
        run: Any, provider: DockerProvider, make_spec: Any, docker_client: Any) -> None:
    box = run(provider.create(make_spec(provider.run_id)))
    agent = box._channel.agent_pid

    async def scenario() -> None:
        async def kill_agent() -> None:  # only the engine (root outside) can
            await asyncio.sleep(0.5)
            await asyncio.to_thread(docker_client.api.exec_start, docker_client.api.exec_create(
                box.id, ["kill", "-9", str(agent)], user="0:0")["Id"])

        killer = asyncio.create_task(kill_agent())
        try:
            await box.exec("sleep 30")
        finally:
            await killer

    try:
        with pytest.raises(SandboxUnavailable,
                           match=r"exec channel broke \(the exec agent exited with 137\)"):
            run(scenario())
        assert run(box.exec("echo back")).stdout == "back\n"
        assert box.uses_channel and box._channel.agent_pid != agent
    finally:
        run(box.aclose())


def test_fast_output_of_a_starved_client_is_not_lost(run: Any, make_spec: Any,
                                                     docker_client: Any) -> None:
    """One engine exec per command (the fallback path), on a busy host: when the thread that
    starts the exec waits for the interpreter long enough, the command's output reaches the
    socket before the `101` headers are read, and http.client's buffered reader takes both. That
    output must still arrive (a CI run once saw `ls` print nothing). A spinning thread and a long
    switch interval make the wait certain here."""
    prov = DockerProvider(new_run_id("starved"), exec_channel=False)
    run(prov.start())
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    interval = sys.getswitchinterval()
    spinner = threading.Thread(target=spin, daemon=True)
    try:
        box = run(prov.create(make_spec(prov.run_id)))
        sys.setswitchinterval(0.25)
        spinner.start()
        res = run(box.exec(["echo", "hi"]))
    finally:
        stop.set()
        sys.setswitchinterval(interval)
        spinner.join()
        run(prov.aclose())
    assert (res.returncode, res.stdout) == (0, "hi\n")


def test_big_output_keeps_host_memory_flat(run: Any, provider: DockerProvider,
                                           make_spec: Any) -> None:
    box = run(provider.create(make_spec(provider.run_id)))
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter
        before = _status_kb("VmRSS")
        res = run(box.exec("head -c 1G /dev/zero | tr '\\0' x", timeout_s=120))
        grown_mb = (_status_kb("VmHWM") - before) / 1024
    finally:
        run(box.aclose())
    assert res.ok and res.truncated and f"[... {(1 << 30) - 2 * (256 << 10)} bytes" in res.stdout
    assert grown_mb < 100, f"host memory grew by {grown_mb:.0f} MB for 1 GiB of output"


def test_hundreds_of_commands_at_once_in_one_sandbox(run: Any, provider: DockerProvider,
                                                     make_spec: Any) -> None:
    """700 commands in flight in one sandbox (parallel tool calls, a sweep): the agent's process
    starter holds two descriptors per running command, past 1024 at once."""
    box = run(provider.create(make_spec(provider.run_id, pids_limit=4000, memory_mb=1024)))

    async def burst() -> list[Any]:
        return list(await asyncio.gather(*(box.exec(["sleep", "2"]) for _ in range(700))))

    try:
        results = run(burst())
        after = run(box.exec(["true"]))
    finally:
        run(box.aclose())
    failed = [r for r in results if not r.ok]
    assert not failed, f"{len(failed)} of 700 failed, e.g. {failed[0].stderr[:200]}"
    assert after.ok


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


# ---- warm pool -------------------------------------------------------------------------------


def test_warm_pool_hands_out_fresh_containers_fast(run: Any, make_spec: Any, docker_client: Any,
                                                   ) -> None:
    pooled = DockerProvider(new_run_id("pool"), pool_size=2)

    async def scenario() -> dict[str, Any]:
        async with pooled:
            spec = make_spec(pooled.run_id)
            start = time.perf_counter()
            cold = await pooled.create_cold(spec)
            cold_s = time.perf_counter() - start
            await cold.aclose()
            await pooled.warm(spec)
            assert pooled.pool is not None and pooled.pool.ready(spec) == 2
            start = time.perf_counter()
            a = await pooled.create(spec.model_copy(update={"subtask_id": "a", "env": {"W": "a"}}))
            warm_s = time.perf_counter() - start
            b = await pooled.create(spec.model_copy(update={"subtask_id": "b", "env": {"W": "b"}}))
            outs = [(await box.exec("echo $W; ls /workspace | wc -l")).stdout for box in (a, b)]
            await a.exec("touch /workspace/state")
            ids = {a.id, b.id}
            await a.aclose()
            await b.aclose()
            await pooled.warm(spec)  # refilled behind the acquisitions
            c = await pooled.create(spec)
            leftover = (await c.exec("ls /workspace")).stdout
            await c.aclose()
            return {"cold": cold_s, "warm": warm_s, "outs": outs, "ids": ids, "c": c.id,
                    "leftover": leftover}

    got = run(scenario())
    assert got["warm"] <= 0.1 * got["cold"], got
    assert got["outs"] == ["a\n0\n", "b\n0\n"]
    assert got["c"] not in got["ids"] and got["leftover"] == ""  # never reused: no state leaks
    assert containers_of(docker_client, pooled.run_id) == []  # pool drained at exit


# ---- the orphan sweep and exit paths -----------------------------------------------------------

CHILD = textwrap.dedent("""
    import asyncio, os, signal, sys
    from labcoat.sandboxes import DockerProvider, SandboxSpec

    async def main():
        async with DockerProvider(sys.argv[1]) as provider:
            box = await provider.create(SandboxSpec(image=sys.argv[2], run_id=sys.argv[1],
                                                    memory_mb=128))
            print(box.id, box.scratch, flush=True)
            if sys.argv[3] == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            await asyncio.sleep(120)

    asyncio.run(main())
""")


def spawn_child(run_id: str, image: str, mode: str) -> tuple[subprocess.Popen[str], str, Path]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, run_id, image, mode],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    cid, scratch = proc.stdout.readline().split()
    return proc, cid, Path(scratch)


def test_sigkilled_run_is_swept_at_next_start(run: Any, docker_client: Any, sandbox_image: str,
                                              ) -> None:
    run_id = new_run_id("orphan")
    proc, cid, scratch = spawn_child(run_id, sandbox_image, "kill")
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # Left behind... unless another xdist worker's provider started in between and swept them
    # already (every start sweeps this host's orphans): either way the sweep's code removed them.
    left = containers_of(docker_client, run_id)
    assert left in ([cid], [])
    fresh = DockerProvider(new_run_id("sweeper"))
    run(fresh.start())  # ...and swept by the next provider to start
    run(fresh.aclose())
    assert containers_of(docker_client, run_id) == []
    assert not scratch.exists()


def test_sigterm_removes_the_runs_containers(docker_client: Any, sandbox_image: str) -> None:
    run_id = new_run_id("term")
    proc, cid, scratch = spawn_child(run_id, sandbox_image, "wait")
    assert containers_of(docker_client, run_id) == [cid]
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert containers_of(docker_client, run_id) == []
    assert not scratch.exists()


def test_cleanup_command_by_run(run: Any, make_spec: Any, docker_client: Any) -> None:
    other = DockerProvider(new_run_id("bycli"))
    run(other.start())
    box = run(other.create(make_spec(other.run_id)))
    assert cleanup_command(other.run_id) == f"removed 1 container(s) of run {other.run_id}"
    assert containers_of(docker_client, other.run_id) == []
    run(box.aclose())
    run(other.aclose())
