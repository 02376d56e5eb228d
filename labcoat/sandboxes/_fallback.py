"""Without the exec agent (no python3 in the image, or `exec_channel=False`): file operations,
start failures and OOM kills, each learnt from the engine rather than from an error's wording.

A file operation is one engine exec of a small shell script run as the sandbox user, whose exit
code carries the errno (`100 + errno`), so the caller gets FileNotFoundError, PermissionError or
IsADirectoryError as Python would raise them. A command that could not start is one the engine
never gave a process (`StreamedExec.started`); a second small script then says why.
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docker import DockerClient

from labcoat.sandboxes.channel import exec_stream

FILE_TIMEOUT_S = 120.0

_ERRNO_BASE = 100
_READ = ('[ -e "$1" ] || exit 102; [ -d "$1" ] && exit 121; [ -r "$1" ] || exit 113; '
         '[ -f "$1" ] || exit 122; exec head -c "$2" -- "$1"')
_WRITE = ('d=$(dirname -- "$1"); [ -d "$d" ] || mkdir -p -- "$d" 2>/dev/null || exit 113; '
          '[ -d "$1" ] && exit 121; if [ -e "$1" ]; then [ -w "$1" ] || exit 113; '
          'else [ -w "$d" ] || exit 113; fi; cat > "$1" || exit 105')
# Why the engine could not start a program in a folder: ENOENT (no folder, no such program)
# or EACCES (there, but not executable or not a file).
_WHY_NOT_STARTED = ('cd "$1" 2>/dev/null || exit 102; case $2 in */*) p=$2 ;; '
                    '*) p=$(command -v "$2") || exit 102 ;; esac; [ -e "$p" ] || exit 102; '
                    'exit 113')


def os_error(code: int, path: str, where: str) -> OSError:
    """The OSError (a FileNotFoundError for ENOENT, and so on) a script's exit `code` means."""
    num = code - _ERRNO_BASE if _ERRNO_BASE < code < _ERRNO_BASE + 134 else errno.EIO
    return OSError(num, f"{os.strerror(num)} (in {where})", path)


async def read_file(client: DockerClient, cid: str, path: str, cap: int, where: str) -> bytes:
    """At most `cap + 1` bytes of `path` (more than `cap` means: over the cap)."""
    res = await exec_stream(client, cid, ["sh", "-c", _READ, "sh", path, str(cap + 1)], env={},
                            workdir=None, stdin=None, timeout_s=FILE_TIMEOUT_S, cap=cap + 1)
    if res.timed_out:
        raise TimeoutError(f"reading {path} took over {FILE_TIMEOUT_S:.0f} s (in {where})")
    if res.returncode != 0:
        raise os_error(res.returncode, path, where)
    return bytes(res.stdout.head)


async def write_file(client: DockerClient, cid: str, path: str, data: bytes, where: str) -> None:
    res = await exec_stream(client, cid, ["sh", "-c", _WRITE, "sh", path], env={}, workdir=None,
                            stdin=data, timeout_s=FILE_TIMEOUT_S, cap=4096)
    if res.timed_out:
        raise TimeoutError(f"writing {path} took over {FILE_TIMEOUT_S:.0f} s (in {where})")
    if res.returncode != 0:
        raise os_error(res.returncode, path, where)


async def start_error(client: DockerClient, cid: str, program: str, workdir: str,
                      env: dict[str, str]) -> str:
    """The errno name of why `program` could not start in `workdir` (ENOENT or EACCES)."""
    res = await exec_stream(client, cid, ["sh", "-c", _WHY_NOT_STARTED, "sh", workdir, program],
                            env=env, workdir=None, stdin=None, timeout_s=30.0, cap=4096)
    return "ENOENT" if res.returncode == _ERRNO_BASE + errno.ENOENT else "EACCES"


async def oom_events_since(client: DockerClient, cid: str, wall: float, settle_s: float) -> int:
    """How many `oom` events the engine reported for the container since `wall`, waiting
    `settle_s` for one still on its way (the engine streams events until `until`)."""
    flt = {"container": cid, "event": "oom", "type": "container"}

    def scan() -> int:
        api: Any = client.api  # typed for whole seconds; the engine takes "seconds.nanos"
        stream = api.events(since=f"{wall:.9f}", until=f"{time.time() + settle_s:.9f}",
                            filters=flt, decode=True)
        return sum(1 for _ in stream)

    try:
        return await asyncio.to_thread(scan)
    except Exception:
        return 0
