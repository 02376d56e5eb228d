"""Making a file or a rename durable: fsync by path, the one copy every writer uses.

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
