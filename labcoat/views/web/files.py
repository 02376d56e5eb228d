"""Files of a run directory, for the file route and the logs on a subtask page.

Only regular files inside the run directory are ever read: a path with `..`, an absolute path,
a NUL byte, or a symlink whose target lies outside the run (at any depth) is refused, and the
caller answers 404. The route serves them as plain text, never as HTML.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

LOG_TAIL = 32_000
"""Bytes of a log shown on a subtask page (the end; the file route serves it whole)."""
MAX_LISTED = 200


def _inside(run_dir: Path, rel: str) -> Path | None:
    """The real path of `rel` (symlinks followed) when it exists inside `run_dir`, else None."""
    if not rel or "\x00" in rel or "\\" in rel:
        return None
    parts = PurePosixPath(rel)
    if parts.is_absolute() or ".." in parts.parts:
        return None
    root = run_dir.resolve()
    try:
        real = (root / parts).resolve(strict=True)
    except (OSError, RuntimeError):  # missing, or a symlink loop
        return None
    return real if real.is_relative_to(root) else None


def confined(run_dir: Path, rel: str) -> Path | None:
    """The real path of `rel` under `run_dir` when it is a regular file inside it, else None."""
    real = _inside(run_dir, rel)
    return real if real is not None and real.is_file() else None


def listing(run_dir: Path, rel_dir: str) -> list[tuple[str, Path]]:
    """(relative path, real path) of the regular files directly in `rel_dir`, sorted."""
    folder = confined_dir(run_dir, rel_dir)
    if folder is None:
        return []
    try:
        names = sorted(os.listdir(folder))[:MAX_LISTED]
    except OSError:
        return []
    found = [(f"{rel_dir}/{n}", confined(run_dir, f"{rel_dir}/{n}")) for n in names]
    return [(rel, real) for rel, real in found if real is not None]


def confined_dir(run_dir: Path, rel: str) -> Path | None:
    """Like `confined`, for a directory."""
    real = _inside(run_dir, rel)
    return real if real is not None and real.is_dir() else None


def read_end(path: Path, limit: int = LOG_TAIL) -> tuple[str, bool]:
    """The last `limit` bytes of a file as text (bad bytes replaced), and whether it was cut."""
    with open(path, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(max(size - limit, 0))
        data = f.read(limit)
    return data.decode("utf-8", errors="replace"), size > limit
