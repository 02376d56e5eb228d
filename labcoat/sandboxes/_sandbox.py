"""`DockerSandbox`: one hardened container, its exec channel and its host scratch folders.

Commands go through the in-container agent (about a millisecond each); when the agent cannot run
(no python3 in the image) or cannot be restarted, each command is its own engine exec instead.
Either way every command and file operation runs as the sandbox user, and labcoat's own
processes (the init, the agent) run as root, out of the commands' reach.

A command's failure, timeout, OOM kill or failure to start is an `ExecResult`; the container,
the engine or the channel dying under a command is `SandboxUnavailable` (an infrastructure
failure: the command's outcome is unknown, so the caller should retry in a new sandbox).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import posixpath
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Self, TypeVar

if TYPE_CHECKING:
    from docker import DockerClient

from labcoat.errors import SandboxUnavailable, UnsafeOutputError
from labcoat.sandboxes import _container as ctr
from labcoat.sandboxes import _fallback, files
from labcoat.sandboxes.base import ExecResult, SandboxSpec
from labcoat.sandboxes.channel import Channel, ChannelClosed, exec_stream, kill_user
from labcoat.sandboxes.disk import DiskGuard
from labcoat.sandboxes.engine import START_HINT, docker_host
from labcoat.sandboxes.wire import (
    ExecReply,
    KillReply,
    Message,
    ReadReply,
    Reply,
    WireError,
    parse_reply,
)

log = logging.getLogger(__name__)

AGENT_GRACE_S = 3.0
"""How long past a command's deadline the agent may take to report the kill."""
OOM_EVENT_SETTLE_S = 0.5
"""How long the fallback path waits for the OOM event of a command that died of SIGKILL."""
FILE_TIMEOUT_S = 120.0
"""How long one read_file or write_file through the agent may take."""
OWNER = (ctr.SANDBOX_UID, ctr.SANDBOX_GID)
R = TypeVar("R", bound=Reply)


def max_blob(spec: SandboxSpec) -> int:
    """The most bytes one reply of the agent may carry for sandboxes of `spec`."""
    return max(spec.max_file_bytes, 4 * spec.output_cap_bytes) + (1 << 16)


class DockerSandbox:
    """A running container. Use as `async with`; `aclose()` force-removes it (idempotent)."""

    def __init__(self, client: DockerClient, container_id: str, name: str, spec: SandboxSpec,
                 scratch: Path, channel: Channel | None, *,
                 on_close: Callable[[str], None] | None = None, use_channel: bool = True) -> None:
        self.client, self.id, self.name, self.spec = client, container_id, name, spec
        self.scratch, self._channel, self._on_close = scratch, channel, on_close
        self._use_channel = use_channel and channel is not None
        self._copied_out = 0
        self.closed = False
        self.disk = DiskGuard.of(scratch, spec.disk_mb)
        """Watches the writable folders against `spec.disk_mb` (None: no limit)."""

    def __repr__(self) -> str:
        return f"DockerSandbox({self.name}, {self.id[:12]})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def uses_channel(self) -> bool:
        """True while commands go through the persistent agent (False: one exec each)."""
        return self._channel is not None and not self._channel.closed

    # ---- exec -----------------------------------------------------------------------------

    async def exec(self, cmd: str | Sequence[str], *, cwd: str | None = None,
                   env: Mapping[str, str] | None = None, timeout_s: float | None = None,
                   stdin: bytes | str | None = None) -> ExecResult:
        """Run `cmd` (a string through `bash -c`) in `cwd` (default `spec.workdir`).

        `env` is merged over `spec.env`; nothing of the host's environment is passed. At
        `timeout_s` the command's whole process tree is killed and `timed_out` is set. When the
        writable folders reach `spec.disk_mb`, every command process is killed and `disk_full`
        is set; from then on nothing runs in the sandbox (each later result says why).
        Raises `SandboxUnavailable` only when the sandbox itself failed.
        """
        if self.disk is None:
            return await self._exec(cmd, cwd=cwd, env=env, timeout_s=timeout_s, stdin=stdin)
        refused = self.disk.refusal()
        if refused is not None:
            return refused
        return await self.disk.watch(
            self._exec(cmd, cwd=cwd, env=env, timeout_s=timeout_s, stdin=stdin), self.kill_all)

    async def _exec(self, cmd: str | Sequence[str], *, cwd: str | None,
                    env: Mapping[str, str] | None, timeout_s: float | None,
                    stdin: bytes | str | None) -> ExecResult:
        argv = ["bash", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        merged = {**self.spec.env, **(env or {})}
        workdir = self._abs(cwd or self.spec.workdir)
        started = time.monotonic()
        channel = await self._live_channel()
        if channel is None:
            return await self._exec_fallback(argv, merged, workdir, data, timeout_s, started)
        req = {"argv": argv, "cwd": workdir, "env": merged, "timeout": timeout_s,
               "cap": self.spec.output_cap_bytes}
        deadline = None if timeout_s is None else timeout_s + AGENT_GRACE_S
        try:
            msg = await channel.request("exec", timeout_s=deadline, blob=data, **req)
        except TimeoutError:
            return await self._agent_hung(channel, started)
        except ChannelClosed as err:
            raise await self._unavailable("the command", err) from None
        return await self._result(channel, msg, started)

    async def _result(self, channel: Channel, msg: Message, started: float) -> ExecResult:
        reply = await self._parsed(channel, ExecReply, msg, 2, "the command")
        out, err_ = (b.decode("utf-8", "replace") for b in msg.blobs)
        return ExecResult(
            returncode=reply.rc, stdout=out, stderr=err_, timed_out=reply.timed_out,
            oom_killed=reply.oom, oom_kills=reply.oom_kills, start_error=reply.start_error,
            truncated=reply.truncated, duration_s=time.monotonic() - started,
        )

    async def _agent_hung(self, channel: Channel, started: float) -> ExecResult:
        """The agent missed the deadline (starved by the commands): kill every command."""
        await channel.aclose()
        await self._kill_user()
        log.warning("sandbox %s: exec agent missed a deadline; killed its commands", self.name)
        return ExecResult(returncode=137, timed_out=True, duration_s=time.monotonic() - started,
                          stderr="[labcoat: timeout; the exec agent stopped answering, so every "
                                 "command process in the sandbox was killed]")

    async def _exec_fallback(self, argv: list[str], env: dict[str, str], workdir: str,
                             data: bytes | None, timeout_s: float | None, started: float,
                             ) -> ExecResult:
        wall = time.time()
        try:
            res = await exec_stream(self.client, self.id, argv, env=env, workdir=workdir,
                                    stdin=data, timeout_s=timeout_s,
                                    cap=self.spec.output_cap_bytes)
            why = None if res.started else await _fallback.start_error(
                self.client, self.id, argv[0], workdir, env)
        except Exception as err:
            raise await self._unavailable("the command", err) from None
        # a command killed by SIGKILL may be the OOM killer's: its event can trail the exit
        killed = res.returncode == 137 and not res.timed_out
        settle = OOM_EVENT_SETTLE_S if killed else 0.0
        ooms = await _fallback.oom_events_since(self.client, self.id, wall, settle)
        died = killed and ooms > 0
        return ExecResult(
            returncode=(127 if why == "ENOENT" else 126) if why else res.returncode,
            stdout=res.stdout.text(), stderr=res.stderr.text(), timed_out=res.timed_out,
            oom_killed=died, oom_kills=ooms - died, start_error=why,
            truncated=res.stdout.truncated or res.stderr.truncated,
            duration_s=time.monotonic() - started,
        )

    async def kill_all(self) -> int:
        """SIGKILL every process of the sandbox user: whatever the commands started, daemons
        that called setsid or cleared their environment included. The init and the agent run
        as root and stay. Returns how many were killed (-1: unknown, on the fallback path)."""
        channel = await self._live_channel()
        what = "killing the commands' processes"
        if channel is None:
            await self._kill_user()
            return -1
        try:
            msg = await channel.request("kill_all", timeout_s=30.0)
        except (ChannelClosed, TimeoutError) as err:
            raise await self._unavailable(what, err) from None
        return (await self._parsed(channel, KillReply, msg, 0, what)).killed

    async def _kill_user(self) -> None:
        try:
            await kill_user(self.client, self.id)
        except Exception as err:
            raise await self._unavailable("killing the commands' processes", err) from None

    async def _live_channel(self) -> Channel | None:
        """The agent's channel, restarted once if it died; None means the fallback path."""
        if self.closed:
            raise SandboxUnavailable(f"sandbox {self.name} is closed")
        if self._channel is not None and not self._channel.closed:
            return self._channel
        if self._channel is not None:
            await self._channel.aclose()
            self._channel = None
        if not self._use_channel:
            return None
        try:
            self._channel = await Channel.start(self.client, self.id, max_blob=max_blob(self.spec))
        except Exception as err:
            log.warning("sandbox %s: exec agent restart failed (%s); one exec per command",
                        self.name, err)
            self._use_channel, self._channel = False, None
        return self._channel

    async def _parsed(self, channel: Channel, model: type[R], msg: Message, blobs: int,
                      what: str) -> R:
        """The agent's reply as `model`. The agent is labcoat's own and out of the commands'
        reach, so a reply it cannot have meant breaks the channel: `SandboxUnavailable`."""
        try:
            if "error" in msg.header:
                raise WireError(f"exec agent error: {msg.header['error']}")
            return parse_reply(model, msg, blobs)
        except WireError as err:
            await channel.aclose()
            raise await self._unavailable(what, err) from None

    async def _unavailable(self, what: str, err: BaseException) -> SandboxUnavailable:
        cause = await self._diagnose()
        return SandboxUnavailable(
            f"sandbox {self.name}: {what} was interrupted because {cause} ({err}); its outcome is "
            "unknown. This is an infrastructure failure, not the task's: retry in a new sandbox"
        )

    async def _diagnose(self) -> str:
        from docker.errors import NotFound

        try:
            info = await asyncio.to_thread(self.client.api.inspect_container, self.id)
        except NotFound:
            return "its container was removed"
        except Exception:
            return f"the Docker engine at {docker_host()} stopped answering; {START_HINT}"
        state = info.get("State", {})
        if not state.get("Running"):
            return (f"its container stopped (exit {state.get('ExitCode')}, "
                    f"OOMKilled={state.get('OOMKilled')})")
        return "the exec channel broke (" + await self._agent_state() + ")"

    async def _agent_state(self) -> str:
        """Whether the exec agent exited or only its connection to the engine closed."""
        if self._channel is None:
            return "no exec agent"
        try:
            info = await asyncio.to_thread(self.client.api.exec_inspect,
                                           self._channel.sock.exec_id)
        except Exception:
            return "the exec agent died or answered out of turn"
        if info.get("Running"):
            return "the exec agent still runs; its connection to the engine closed"
        return f"the exec agent exited with {info.get('ExitCode')}"

    # ---- single files -----------------------------------------------------------------------

    async def read_file(self, path: str, *, max_bytes: int = 10 * 1024 * 1024) -> bytes:
        """The file's bytes, read with the sandbox user's rights; `OSError`s as in Python,
        `UnsafeOutputError` over `max_bytes`. A plain file under /workspace or /outputs is read
        straight from the host folder behind it (no copy through the container)."""
        path = self._abs(path)
        cap = min(max_bytes, self.spec.max_file_bytes)
        bound = self._bound(path)
        if bound is not None:
            data = await asyncio.to_thread(files.read_plain, *bound, cap, OWNER)
            if data is not None:
                return data
        channel = await self._live_channel()
        if channel is None:
            data = await _fallback.read_file(self.client, self.id, path, cap, self.name)
            if len(data) > cap:
                raise _too_big(self.name, path, None, cap)
            return data
        msg = await self._file_op(channel, "read", path=path, max=cap)
        reply = await self._parsed(channel, ReadReply, msg, 1, f"read of {path}")
        if reply.too_big is not None:
            raise _too_big(self.name, path, reply.too_big, cap)
        return msg.blobs[0]

    async def write_file(self, path: str, data: bytes | str) -> None:
        """Write (creating parent folders) as the sandbox user, with its rights."""
        path = self._abs(path)
        raw = data.encode() if isinstance(data, str) else data
        channel = await self._live_channel()
        if channel is None:
            await _fallback.write_file(self.client, self.id, path, raw, self.name)
        else:
            await self._file_op(channel, "write", blob=raw, path=path)

    async def _file_op(self, channel: Channel, op: str, *, blob: bytes | None = None,
                       path: str, **fields: object) -> Message:
        try:
            msg = await channel.request(op, timeout_s=FILE_TIMEOUT_S, blob=blob, path=path,
                                        **fields)
        except (ChannelClosed, TimeoutError) as err:
            raise await self._unavailable(f"{op} of {path}", err) from None
        if "error" in msg.header:
            code = getattr(errno, str(msg.header.get("errno") or "EIO"), errno.EIO)
            raise OSError(code, f"{os.strerror(code)} (in sandbox {self.name})", path)
        return msg

    # ---- directory trees ----------------------------------------------------------------------

    async def put_dir(self, src: Path, dest: str = "/workspace") -> None:
        """Copy the host folder `src`'s contents into `dest`, owned by the sandbox user."""
        dest = self._abs(dest)
        bound = self._bound(dest)
        if bound is not None:
            await asyncio.to_thread(files.copy_in, Path(src), bound[0], bound[1], _owner())
            return
        tar = await asyncio.to_thread(files.tar_of, Path(src), OWNER)
        script = 'mkdir -p "$1" && tar -x --no-same-owner -f - -C "$1"'
        res = await self.exec(["sh", "-c", script, "sh", dest], stdin=tar)
        if res.returncode != 0:
            raise OSError(errno.EIO, f"put_dir into {dest} of sandbox {self.name}: {res.stderr}")

    async def get_dir(self, src: str, dest: Path, *, max_bytes: int | None = None,
                      max_file_bytes: int | None = None) -> None:
        """Copy sandbox folder `src` to host folder `dest`, refusing anything unsafe.

        Every process the commands started is killed first (`kill_all`), so nothing changes
        the tree while it is read; an entry that changes all the same fails the copy with
        `UnsafeOutputError`. Symlinks are kept only when they point inside the folder; absolute
        paths, `..`, escaping links, device nodes and FIFOs raise `UnsafeOutputError`, as do
        files over `max_file_bytes` and totals over `max_bytes` or the sandbox's
        `max_copy_bytes`.
        """
        src = self._abs(src)
        if self.disk is not None and self.disk.exceeded:
            raise UnsafeOutputError(f"sandbox {self.name}: {self.disk.exceeded}")
        await self.kill_all()
        budget = self._budget(src, max_bytes, max_file_bytes)
        bound = self._bound(src)
        try:
            if bound is not None:
                await asyncio.to_thread(files.copy_out, bound[0], bound[1], Path(dest), budget)
            else:
                await self._get_archive(src, Path(dest), budget)
        finally:
            self._copied_out += budget.used

    def _budget(self, src: str, max_bytes: int | None, max_file: int | None) -> files.Budget:
        left = self.spec.max_copy_bytes - self._copied_out
        total = left if max_bytes is None else min(max_bytes, left)
        file_cap = min(max_file or self.spec.max_file_bytes, self.spec.max_file_bytes)
        return files.Budget(max_file=file_cap, max_total=total,
                            where=f"sandbox {self.name}: get_dir({src})")

    async def _get_archive(self, src: str, dest: Path, budget: files.Budget) -> None:
        if src == "/tmp" or src.startswith("/tmp/"):
            raise ValueError(f"get_dir({src}): the engine cannot read the tmpfs at /tmp; "
                             "copy into /workspace inside the sandbox first")
        try:
            stream, _ = await asyncio.to_thread(self.client.api.get_archive, self.id, src)
        except Exception as err:
            raise FileNotFoundError(errno.ENOENT, f"sandbox {self.name}: {src}: {err}") from None
        await asyncio.to_thread(files.extract_tar, iter(stream), dest, budget)

    def _bound(self, path: str) -> tuple[Path, str] | None:
        """(host folder, relative path) when `path` lies in a bind-mounted writable folder."""
        for target in self.spec.writable_dirs:
            if path == target or path.startswith(target.rstrip("/") + "/"):
                return ctr.scratch_dir(self.scratch, target), posixpath.relpath(path, target)
        return None

    def _abs(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.spec.workdir, path))

    # ---- teardown -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Force-remove the container (never a graceful stop) and its host folders."""
        if self.closed:
            return
        self.closed = True
        if self._channel is not None:
            await self._channel.aclose()
        await asyncio.shield(asyncio.to_thread(self._remove))

    def _remove(self) -> None:
        try:
            self.client.api.remove_container(self.id, force=True, v=True)
        except Exception as err:
            if "No such container" not in str(err):
                log.warning("sandbox %s not removed (%s); `labcoat sandbox cleanup` will",
                            self.name, err)
        ctr.remove_scratch(self.scratch)
        if self._on_close is not None:
            self._on_close(self.name)


def _owner() -> tuple[int, int] | None:
    return OWNER if os.geteuid() == 0 else None


def _too_big(name: str, path: str, size: int | None, cap: int) -> UnsafeOutputError:
    size_is = f"is {size} bytes," if size is not None else "is"
    return UnsafeOutputError(
        f"sandbox {name}: {path} {size_is} over the cap of {cap} bytes; read a part of it "
        "(e.g. `exec('tail -c 100000 FILE')`) or raise `max_bytes`"
    )
