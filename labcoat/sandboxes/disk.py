"""Disk limits: what one sandbox may write to its writable folders (/workspace and /outputs).

Two ways, chosen per host (`hard_limits()` says which, `labcoat doctor` prints it):

* **hard** (root, loop devices, `mkfs.ext4`): the sandbox's scratch folder is a sparse ext4
  image of the limit's size, loop-mounted (nosuid, nodev, discard) and bind-mounted into the
  container, so a write past the limit fails with ENOSPC and never touches the rest of the host
  disk. The image costs nothing until written, is unmounted and deleted with the sandbox, and
  takes tens of milliseconds to make (the warm pool makes it ahead of need);
* **watchdog** (anywhere else): the scratch folder is a plain folder whose size is measured while
  commands run; a sandbox can overshoot by what it writes between two looks.

Either way, a command that fills the limit is stopped (every process of the commands is killed),
its result says "disk limit exceeded", and the sandbox refuses further commands and copies: the
subtask fails, and removing the sandbox gives the space back.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path

from labcoat.sandboxes.base import ExecResult

log = logging.getLogger(__name__)

MODE_ENV = "LABCOAT_DISK_LIMITS"
"""`watchdog` keeps sandboxes off loop devices even where hard limits are possible."""
WATCHDOG_NOTE = ("a sandbox may overshoot `resources.disk` by what it writes in half a second, "
                 "and each command costs a walk of its folders; for hard limits run labcoat as "
                 "root on a host with loop devices and mkfs.ext4")
POLL_S = 0.5
"""How often a running command's disk use is looked at (a command that ends sooner costs no
look at all but the one after it)."""
IMAGE_SUFFIX = ".disk"
"""The image of scratch folder `X` is the file `X.disk` beside it."""
_MIN_FREE = 1 << 20
"""A hard-limited folder with less than this free is full (ENOSPC is near or has struck)."""
_MKFS = ["mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal",
         "-E", "lazy_itable_init=1,nodiscard"]
_MOUNT_OPTIONS = "loop,nosuid,nodev,discard,noinit_itable"


def image_bytes(limit_mb: int) -> int:
    """Image size for `limit_mb` of files: ext4 keeps 2-4 % for itself (inode tables)."""
    return limit_mb * (1 << 20) * 105 // 100 + (8 << 20)


def hard_limits() -> str | None:
    """None when sandboxes get hard disk limits on this host, else why not (for doctor)."""
    if os.environ.get(MODE_ENV, "").strip().lower() == "watchdog":
        return f"${MODE_ENV} is `watchdog`"
    if os.geteuid() != 0:
        return "labcoat is not running as root (mounting a disk image needs root)"
    missing = [t for t in ("mkfs.ext4", "mount", "umount") if shutil.which(t) is None]
    if missing:
        return f"{', '.join(missing)} not found (install e2fsprogs / mount)"
    if not os.path.exists("/dev/loop-control"):
        return "no loop devices (/dev/loop-control is missing; `modprobe loop`)"
    if not _engine_shares_our_mounts():
        return ("labcoat runs in a mount namespace of its own (e.g. under `unshare -m`): the "
                "Docker engine would not see a disk image mounted here")
    return _broken[0] if _broken else None


@functools.cache
def _engine_shares_our_mounts() -> bool:
    """Is the Docker engine (else init) in our mount namespace? A bind mount of a folder is
    resolved in the engine's namespace, where a mount made only in ours does not exist."""
    try:
        ours = os.readlink("/proc/self/ns/mnt")
    except OSError:
        return False
    for pid_file in ("/run/docker.pid", "/var/run/docker.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(Path(pid_file).read_text().strip())
            return os.readlink(f"/proc/{pid}/ns/mnt") == ours
    try:
        return os.readlink("/proc/1/ns/mnt") == ours
    except OSError:
        return False


_broken: list[str] = []
"""Why mounting failed in this process once (then every later sandbox uses the watchdog)."""


def make_image(folder: Path, limit_mb: int) -> bool:
    """Mount a fresh `limit_mb` ext4 image at `folder`; False (watchdog instead) when the host
    cannot. The first failure is logged and remembered for the life of the process."""
    if hard_limits() is not None:
        return False
    image = folder.with_name(folder.name + IMAGE_SUFFIX)
    try:
        copy_sparse(_template(folder.parent, limit_mb), image)
        folder.mkdir(mode=0o700, exist_ok=True)
        _mount(image, folder)
    except (OSError, subprocess.SubprocessError) as err:
        image.unlink(missing_ok=True)
        if _host_full(err):
            raise  # not the host's inability: its disk is full (the run pauses on that)
        _broken.append(_why(err))
        log.warning("sandbox disk limits fall back to a watchdog: %s", _broken[0])
        return False
    folder.chmod(0o700)  # the file system's root: labcoat's alone (the sandbox sees subfolders)
    return True


def _template(where: Path, limit_mb: int) -> Path:
    """An empty image of `limit_mb`, made once per folder and size: `mkfs.ext4` takes about
    70 ms, a sparse copy of the few MB it wrote about 20 ms."""
    path = where / f"template-{limit_mb}m{IMAGE_SUFFIX}"
    with _template_lock:
        if not path.exists():
            tmp = path.with_name(path.name + ".tmp")
            tmp.unlink(missing_ok=True)
            with open(tmp, "xb") as fh:
                fh.truncate(image_bytes(limit_mb))
            _run([*_MKFS, str(tmp)])
            tmp.rename(path)
    return path


_template_lock = threading.Lock()


def copy_sparse(src: Path, dest: Path) -> None:
    """Copy `src` to a new file `dest`, holes kept as holes (only the written extents move)."""
    fin = os.open(src, os.O_RDONLY)
    try:
        fout = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fout, os.fstat(fin).st_size)
            _copy_extents(fin, fout)
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _copy_extents(fin: int, fout: int) -> None:
    offset = 0
    while True:
        try:
            start = os.lseek(fin, offset, os.SEEK_DATA)
        except OSError as err:
            if err.errno == errno.ENXIO:  # no data past `offset`
                return
            raise
        end = os.lseek(fin, start, os.SEEK_HOLE)
        while start < end:
            copied = os.copy_file_range(fin, fout, end - start, start, start)
            if not copied:
                raise OSError(errno.EIO, "the disk image template shrank while it was copied")
            start += copied
        offset = end


def try_hard_limit(root: Path) -> str | None:
    """Make, check and drop a small image under `root`: None when hard limits work, else why."""
    why = hard_limits()
    if why is not None:
        return why
    trial = root / f"doctor-{os.getpid()}"
    trial.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder = trial / "probe"
    try:
        if not make_image(folder, 16):
            return hard_limits() or "mounting a disk image failed"
        return None if os.path.ismount(folder) else "the image did not mount"
    finally:
        drop_image(folder)
        shutil.rmtree(trial, ignore_errors=True)


def _mount(image: Path, folder: Path) -> None:
    """Loop-mount `image` at `folder`; once more on failure (two mounts at the same moment can
    race for the same free loop device)."""
    argv = ["mount", "-o", _MOUNT_OPTIONS, str(image), str(folder)]
    try:
        _run(argv)
    except subprocess.CalledProcessError:
        _run(argv)


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


def _host_full(err: BaseException) -> bool:
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    stderr = getattr(err, "stderr", None) or b""
    return b"No space left" in stderr


def _why(err: BaseException) -> str:
    if isinstance(err, subprocess.CalledProcessError):
        text = (err.stderr or b"").decode(errors="replace").strip().splitlines()
        return f"`{' '.join(map(str, err.cmd[:2]))}` failed: {text[-1] if text else err}"
    return str(err)


def drop_image(folder: Path) -> None:
    """Unmount `folder` if it is a mount point and delete its image (the space goes back)."""
    if os.path.ismount(folder):
        unmount(folder)
    folder.with_name(folder.name + IMAGE_SUFFIX).unlink(missing_ok=True)


def unmount(folder: Path | str) -> None:
    """Unmount, lazily when still busy (the loop device goes once its last user does)."""
    for argv in (["umount", str(folder)], ["umount", "-l", str(folder)]):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            if subprocess.run(argv, capture_output=True, timeout=60).returncode == 0:
                return


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root` (deepest first), from /proc/self/mountinfo."""
    prefix = os.path.realpath(root)
    found = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            point = _unescape(line.split()[4])
            if point == prefix or point.startswith(prefix.rstrip("/") + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field = field.replace(code, chr(int(code[1:], 8)))
    return field


def tree_bytes(folder: Path) -> int:
    """Bytes a folder's tree takes on disk (allocated blocks, so sparse files count as written)."""
    total = 0
    stack = [str(folder)]
    while stack:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
    return total


@dataclass
class DiskGuard:
    """Watches one sandbox's scratch folder against its limit."""

    folder: Path
    limit_mb: int
    hard: bool
    exceeded: str | None = None
    """Set once the limit was reached: the message every later use of the sandbox gets."""

    @classmethod
    def of(cls, folder: Path, limit_mb: int | None) -> DiskGuard | None:
        if not limit_mb:
            return None
        return cls(folder, limit_mb, hard=os.path.ismount(folder))

    def full(self) -> bool:
        """Has the sandbox written its limit (hard: next to no room left; else: the sum)?"""
        if not self.hard:
            return tree_bytes(self.folder) > self.limit_mb << 20
        st = os.statvfs(self.folder)
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        return (used > self.limit_mb << 20 or st.f_bavail * st.f_frsize < _MIN_FREE
                or st.f_favail == 0)

    def message(self) -> str:
        how = "" if self.hard else " (as the watchdog measured)"
        return (f"disk limit exceeded: /workspace and /outputs reached the sandbox's limit of "
                f"{self.limit_mb} MB{how}, so its commands were stopped; fix: write less (delete "
                "checkpoints and caches as you go) or raise `resources.disk` in experiment.yaml")

    async def watch(self, pending: Awaitable[ExecResult],
                    stop: Callable[[], Awaitable[object]]) -> ExecResult:
        """`pending`'s result; if the limit is reached meanwhile, `stop()` the commands first.
        A result after the limit was reached carries the message and is not `ok`.

        `pending` is awaited right here, not in a task of its own: a command of a millisecond
        pays for no task and no extra turns of the event loop. The checks run on a timer, each in
        a task, while it runs."""
        checks = _Every(POLL_S, lambda: self._stop_if_full(stop))
        try:
            result = await pending
        except BaseException:
            await checks.close(cancel=True)
            raise
        await checks.close(cancel=False)  # a check that is stopping the commands finishes first
        if self.exceeded or await self._check():
            return self._marked(result)
        return result

    async def _stop_if_full(self, stop: Callable[[], Awaitable[object]]) -> None:
        if await self._check():
            await stop()

    async def _check(self) -> bool:
        full = self.full() if self.hard else await asyncio.to_thread(self.full)
        if full and not self.exceeded:
            self.exceeded = self.message()
        return full

    def _marked(self, result: ExecResult) -> ExecResult:
        note = f"\n[labcoat: {self.exceeded}]"
        return result.model_copy(update={"disk_full": True, "stderr": result.stderr + note})

    def refusal(self) -> ExecResult | None:
        """Once the limit was reached, nothing more runs in the sandbox: this result instead."""
        if self.exceeded is None:
            return None
        return ExecResult(returncode=1, disk_full=True, stderr=f"[labcoat: not run: "
                                                                f"{self.exceeded}]")


class _Every:
    """Starts `check()` in a task every `period` seconds (never two at once) until closed."""

    def __init__(self, period: float, check: Callable[[], Coroutine[object, object, None]],
                 ) -> None:
        self.loop, self.period, self.check = asyncio.get_running_loop(), period, check
        self.task: asyncio.Task[None] | None = None
        self.timer = self.loop.call_later(period, self._tick)

    def _tick(self) -> None:
        if self.task is None or self.task.done():
            self.task = self.loop.create_task(self.check())
        self.timer = self.loop.call_later(self.period, self._tick)

    async def close(self, *, cancel: bool) -> None:
        """No more checks; the one running is cancelled (`cancel`) or awaited (its error too)."""
        self.timer.cancel()
        if self.task is None:
            return
        if cancel:
            self.task.cancel()
            with contextlib.suppress(BaseException):  # let it unwind: nothing left pending
                await self.task
        else:
            await self.task
