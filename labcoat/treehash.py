"""One content hash of a folder, for the image tag, the experiment hash and the grader hash."""

from __future__ import annotations

import hashlib
from pathlib import Path


def tree_digest(root: Path, *, skip: frozenset[str] = frozenset()) -> str:
    """sha256 over every file's relative path and bytes in sorted order (links by their target).

    Folders named in `skip` are left out. A missing or empty folder hashes like nothing at all.
    """
    digest = hashlib.sha256()
    if not root.is_dir():
        return digest.hexdigest()
    for path in sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix()):
        rel = path.relative_to(root)
        if skip.intersection(rel.parts) or (path.is_dir() and not path.is_symlink()):
            continue
        body = b"link:" + str(path.readlink()).encode() if path.is_symlink() else path.read_bytes()
        digest.update(rel.as_posix().encode() + b"\0" + body + b"\0")
    return digest.hexdigest()
