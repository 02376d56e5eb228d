"""Making a file or a rename durable: fsync by path, and a new file written and synced; the
one copy every writer uses.

A rename is durable only once its folder is fsynced (a power cut may otherwise undo it): the
log's repair, snapshots, the steering inbox and new run directories all end with
`fsync_path(folder, directory=True)`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_path(path: Path, *, directory: bool = False, best_effort: bool = False) -> None:
    """fsync `path` (a folder when `directory`); `best_effort` ignores an OSError (some file
    systems refuse to fsync a folder)."""
    with contextlib.suppress(OSError) if best_effort else contextlib.nullcontext():
        fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_synced(path: Path, *parts: bytes) -> None:
    """Write `parts` to a new file `path` (one a killed writer left is replaced) and fsync it;
    on any failure the file is removed. The caller renames it into place, then fsyncs the
    folder."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        for part in parts:
            view = memoryview(part)
            while view:  # a write may take only part
                view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
