"""Moving directory trees in and out of sandboxes without trusting what a sandbox wrote.

Everything a sandbox produced is untrusted: a sandbox folder may hold absolute or escaping
symlinks, `..` names in a tar stream, device nodes, FIFOs, or files larger than the caps. Every
read here goes through directory descriptors opened with `O_NOFOLLOW`, so a symlink swapped in
while we copy is refused rather than followed, and every refusal is an `UnsafeOutputError` naming
the entry, the reason and the fix.

Two routes, chosen by `DockerSandbox`:

* the per-sandbox host folder bind-mounted at `/workspace` (and `/outputs`): copied on the host,
  about 1 ms per MB (`copy_in`, `copy_out`);
* anywhere else: tar streams through the engine's archive API (`tar_of`, `extract_tar`).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, cast

from labcoat.errors import UnsafeOutputError
from labcoat.sandboxes import _fdcopy
from labcoat.sandboxes.base import DEFAULT_MAX_COPY_BYTES, DEFAULT_MAX_FILE_BYTES

_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
_FIX = "remove or replace it inside the sandbox, or leave it out of the copied folder"


@dataclass
class Budget:
    """Byte caps for one copy: per file and in total (the total may be shared across calls)."""

    max_file: int = DEFAULT_MAX_FILE_BYTES
    max_total: int | None = DEFAULT_MAX_COPY_BYTES
    used: int = 0
    where: str = "sandbox"

    def charge(self, rel: str, size: int) -> None:
        if size > self.max_file:
            raise UnsafeOutputError(
                f"{self.where}: {rel} is {size} bytes, over the per-file cap of {self.max_file} "
                f"bytes; shrink it in the sandbox or raise `max_file_bytes`"
            )
        self.used += size
        if self.max_total is not None and self.used > self.max_total:
            raise UnsafeOutputError(
                f"{self.where}: copying {rel} brings the total to {self.used} bytes, over the cap "
                f"of {self.max_total} bytes; delete bulky files in the sandbox or raise `max_bytes`"
            )


def check_name(rel: str, where: str) -> PurePosixPath:
    """A member name that stays inside: relative, no `..`, no empty or `.`-only result."""
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts:
        raise UnsafeOutputError(f"{where}: refusing entry {rel!r}: absolute or `..` path; {_FIX}")
    return path


def check_link(rel: str, target: str, where: str) -> None:
    """A symlink may only point inside the copied folder, by a relative path."""
    norm = os.path.normpath(os.path.join(os.path.dirname(rel), target))
    if os.path.isabs(target) or norm == ".." or norm.startswith("../"):
        raise UnsafeOutputError(
            f"{where}: refusing symlink {rel} -> {target}: it points outside the folder; {_FIX}"
        )


def open_dir(root: Path, rel: PurePosixPath | str, *, create: bool = False,
             owner: tuple[int, int] | None = None) -> int:
    """An fd for `root/rel`, never following a symlink below `root` (which we made ourselves)."""
    fd = os.open(root, _DIR_FLAGS)
    for part in PurePosixPath(rel).parts:
        fd = _step_into(fd, part, create, root, owner)  # closes the parent, even on error
    return fd


def _step_into(fd: int, part: str, create: bool, root: Path,
               owner: tuple[int, int] | None = None) -> int:
    if part in ("..", "/"):
        os.close(fd)
        raise UnsafeOutputError(f"refusing path component {part!r} below {root}")
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(part, 0o755, dir_fd=fd)
            _chown(part, fd, owner)
    try:
        nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
    except OSError as err:
        if err.errno in (40, 20):  # ELOOP (a symlink), ENOTDIR
            raise UnsafeOutputError(
                f"{root}: {part} is a symlink or not a folder; refusing to go through it"
            ) from None
        raise
    finally:
        os.close(fd)
    return nxt


# ---- out of a sandbox folder on the host ------------------------------------------------------


@dataclass
class _Out:
    dest: Path
    budget: Budget
    links: list[Path] = field(default_factory=list)


def copy_out(root: Path, rel: str, dest: Path, budget: Budget) -> int:
    """Copy the untrusted tree `root/rel` into `dest`; returns bytes copied."""
    out, base = _Out(dest, budget), open_dir(root, check_name(rel, budget.where))
    start = budget.used
    try:
        _walk_out(out, base, ".", root)
    finally:
        os.close(base)
    verify_links(dest, out.links, budget.where)
    return budget.used - start


def _walk_out(out: _Out, dirfd: int, rel: str, root: Path) -> None:
    (out.dest / rel).mkdir(parents=True, exist_ok=True)
    with _changing(rel, out.budget.where), os.scandir(dirfd) as entries:
        names = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
    for name, is_dir in sorted(names):
        path = os.path.normpath(os.path.join(rel, name))
        if not is_dir:
            with _changing(path, out.budget.where):
                _copy_out_entry(out, path, name, dirfd)
            continue
        with _changing(path, out.budget.where):
            sub = _step_into(os.dup(dirfd), name, False, root)
        try:
            _walk_out(out, sub, path, root)
        finally:
            os.close(sub)


_VANISHED = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EINVAL, errno.ENXIO,
                       errno.ESTALE})
"""What reading an entry raises when something in the sandbox deletes or swaps it meanwhile."""


@contextlib.contextmanager
def _changing(rel: str, where: str) -> Iterator[None]:
    """An entry that vanished or changed kind under us (a process still at work in the sandbox)
    is the sandbox's doing: `UnsafeOutputError`, never a bare OSError. A failure to write on
    the host (a full disk) is not converted."""
    try:
        yield
    except OSError as err:
        if err.errno not in _VANISHED:
            raise
        raise UnsafeOutputError(
            f"{where}: {rel} changed while being copied ({err.strerror}); stop whatever in the "
            "sandbox still writes there, then copy again") from None


def _copy_out_entry(out: _Out, rel: str, name: str, dirfd: int) -> None:
    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(name, dir_fd=dirfd)
        check_link(rel, target, out.budget.where)
        _replace_with_link(out.dest / rel, target)
        out.links.append(out.dest / rel)
    elif stat.S_ISREG(st.st_mode):
        out.budget.charge(rel, st.st_size)
        _copy_regular(out, rel, name, dirfd)
    else:
        raise UnsafeOutputError(
            f"{out.budget.where}: refusing {rel}: it is a {_kind(st.st_mode)}, not a file; {_FIX}"
        )


def _copy_regular(out: _Out, rel: str, name: str, dirfd: int) -> None:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped between stat and open
            raise UnsafeOutputError(f"{out.budget.where}: {rel} changed while being copied")
        if not _fdcopy.copy_regular(fd, os.path.join(out.dest, rel), st):
            raise UnsafeOutputError(f"{out.budget.where}: {rel} grew while being copied; "
                                    "copy it again")
    finally:
        os.close(fd)


def _write_capped(src: IO[bytes], target: Path, mode: int, budget: Budget, rel: str, size: int,
                  ) -> None:
    """Copy at most `size` bytes (the size charged); a file grown since is refused."""
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    with open(target, "xb") as dst:
        left = size
        while left > 0 and (chunk := src.read(min(_CHUNK, left))):
            dst.write(chunk)
            left -= len(chunk)
    if src.read(1):
        raise UnsafeOutputError(f"{budget.where}: {rel} grew while being copied; copy it again")
    os.chmod(target, mode | 0o600)


def verify_links(dest: Path, links: list[Path], where: str) -> None:
    """Resolve every copied symlink physically: a chain of links must not leave `dest` either."""
    root = os.path.realpath(dest)
    bad = [p for p in links if not _inside(os.path.realpath(p), root)]
    for path in bad:
        path.unlink()
    if bad:
        names = ", ".join(str(p.relative_to(dest)) for p in bad)
        raise UnsafeOutputError(f"{where}: refusing symlinks that resolve outside: {names}; {_FIX}")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _replace_with_link(path: Path, target: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    os.symlink(target, path)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def read_plain(root: Path, rel: str, cap: int, user: tuple[int, int]) -> bytes | None:
    """`root/rel`'s bytes when it is a plain file of at most `cap` bytes that the sandbox user
    `user` (uid, gid) may read, reached through real folders that user may search; None for
    anything else (a symlink on the way, no such file, no permission, too big), which the caller
    then asks the sandbox itself about (whose answer is authoritative)."""
    parts = PurePosixPath(rel).parts
    if not parts or ".." in parts:
        return None
    try:
        fd = os.open(root, _DIR_FLAGS)
    except OSError:
        return None
    try:
        for part in parts[:-1]:
            if not _may(os.fstat(fd), 1, user):
                return None
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return _read_leaf(fd, parts[-1], cap, user)
    except OSError:
        return None
    finally:
        os.close(fd)


def _read_leaf(dirfd: int, name: str, cap: int, user: tuple[int, int]) -> bytes | None:
    if not _may(os.fstat(dirfd), 1, user):
        return None
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
    with os.fdopen(fd, "rb") as src:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _may(st, 4, user) or st.st_size > cap:
            return None
        data = src.read(cap + 1)
    return data if len(data) <= cap else None


def _may(st: os.stat_result, bit: int, user: tuple[int, int]) -> bool:
    """Whether the mode bits grant `bit` (4 read, 1 search) to `user` (uid, gid, no groups)."""
    if st.st_uid == user[0]:
        return bool(st.st_mode & (bit << 6))
    if st.st_gid == user[1]:
        return bool(st.st_mode & (bit << 3))
    return bool(st.st_mode & bit)


# ---- into a sandbox folder on the host ---------------------------------------------------------


def copy_in(src: Path, root: Path, rel: str, owner: tuple[int, int] | None) -> int:
    """Copy the trusted host tree `src` into `root/rel` (which the sandbox may have tampered)."""
    fd = open_dir(root, check_name(rel, str(root)), create=True, owner=owner)
    try:
        return _copy_in_dir(src, fd, owner)
    finally:
        os.close(fd)


def _copy_in_dir(src: Path, dest_fd: int, owner: tuple[int, int] | None) -> int:
    total = 0
    with os.scandir(src) as entries:
        for entry in entries:
            total += _copy_in_entry(entry, dest_fd, owner)
    return total


def _copy_in_entry(entry: os.DirEntry[str], dest_fd: int, owner: tuple[int, int] | None) -> int:
    if entry.is_symlink():
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            os.unlink(entry.name, dir_fd=dest_fd)
        os.symlink(os.readlink(entry.path), entry.name, dir_fd=dest_fd)
        _chown(entry.name, dest_fd, owner)
        return 0
    if entry.is_dir(follow_symlinks=False):
        with contextlib.suppress(FileExistsError):
            os.mkdir(entry.name, 0o755, dir_fd=dest_fd)
        _chown(entry.name, dest_fd, owner)
        sub = _step_into(os.dup(dest_fd), entry.name, False, Path(entry.path))
        try:
            return _copy_in_dir(Path(entry.path), sub, owner)
        finally:
            os.close(sub)
    if entry.is_file(follow_symlinks=False):
        return _copy_in_file(entry, dest_fd, owner)
    return 0  # device nodes and FIFOs of the host are not copied in


def _copy_in_file(entry: os.DirEntry[str], dest_fd: int, owner: tuple[int, int] | None) -> int:
    mode = entry.stat(follow_symlinks=False).st_mode & 0o777
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    fd = os.open(entry.name, flags, mode, dir_fd=dest_fd)
    with open(entry.path, "rb") as src, os.fdopen(fd, "wb") as dst:
        size = _pipe(src, dst)
        if owner:
            os.fchown(fd, *owner)
        os.fchmod(fd, mode)
    return size


def _pipe(src: IO[bytes], dst: IO[bytes]) -> int:
    total = 0
    while chunk := src.read(_CHUNK):
        dst.write(chunk)
        total += len(chunk)
    return total


def _chown(name: str, dir_fd: int, owner: tuple[int, int] | None) -> None:
    if owner:
        os.chown(name, *owner, dir_fd=dir_fd, follow_symlinks=False)


# ---- tar streams -------------------------------------------------------------------------------


def tar_of(src: Path, owner: tuple[int, int]) -> bytes:
    """A tar of `src`'s contents, owned by `owner` inside the sandbox."""

    def own(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid, info.gid, info.uname, info.gname = owner[0], owner[1], "", ""
        return info

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for child in sorted(src.iterdir()):
            tar.add(child, arcname=child.name, filter=own)
    return buf.getvalue()


def extract_tar(chunks: Iterator[bytes], dest: Path, budget: Budget) -> int:
    """Extract an engine `get_archive` stream (whose first path part is the folder) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    state = _Out(dest, budget)
    start, seen_links = budget.used, set[PurePosixPath]()
    reader = cast(IO[bytes], _ChunkReader(chunks))  # tarfile reads a stream with read() only
    with tarfile.open(fileobj=reader, mode="r|") as tar:
        for member in tar:
            _extract_member(tar, member, state, seen_links)
    verify_links(dest, state.links, budget.where)
    return budget.used - start


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, out: _Out,
                    links: set[PurePosixPath]) -> None:
    where = out.budget.where
    rel = PurePosixPath(*check_name(member.name, where).parts[1:])
    if not rel.parts:
        return
    if any(parent in links for parent in rel.parents):
        raise UnsafeOutputError(f"{where}: refusing {rel}: it lies below a symlink; {_FIX}")
    target = out.dest / rel
    if member.isdir():
        target.mkdir(exist_ok=True)
    elif member.isreg():
        out.budget.charge(str(rel), member.size)
        src = tar.extractfile(member)
        assert src is not None
        _write_capped(src, target, member.mode & 0o755, out.budget, str(rel), member.size)
    elif member.issym():
        check_link(str(rel), member.linkname, where)
        _replace_with_link(target, member.linkname)
        out.links.append(target)
        links.add(rel)
    elif member.islnk():
        _hardlink(member, rel, out, links)
    else:
        raise UnsafeOutputError(f"{where}: refusing {rel}: it is a device node or FIFO; {_FIX}")


def _hardlink(member: tarfile.TarInfo, rel: PurePosixPath, out: _Out,
              links: set[PurePosixPath]) -> None:
    where = out.budget.where
    source = PurePosixPath(*check_name(member.linkname, where).parts[1:])
    path = out.dest / source
    if source in links or any(p in links for p in source.parents) or not path.is_file():
        raise UnsafeOutputError(f"{where}: refusing hard link {rel} -> {member.linkname}; {_FIX}")
    os.link(path, out.dest / rel)


class _ChunkReader:
    """A read()-able view of an iterator of byte chunks (the engine's archive stream)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        # A bytearray: taking `size` bytes off its front is O(1) in CPython, where slicing a
        # bytes buffer copied the rest of it on every read (quadratic in the chunk size).
        self.chunks, self.buf = chunks, bytearray()

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buf) < size:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buf += chunk
        if size < 0 or size >= len(self.buf):
            data = bytes(self.buf)
            self.buf.clear()
            return data
        data = bytes(self.buf[:size])
        del self.buf[:size]
        return data
