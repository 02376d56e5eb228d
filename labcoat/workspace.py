"""The run's git workspace: every subtask's result is a commit; `labcoat/best` follows the best.

Trees are written without an index: `git ls-files` lists a folder (honouring its .gitignore) and
`git fast-import` stores the files as one pack, so subtasks running at the same time share nothing
and the work tree of the repository is never touched. Exports stream `git archive` into `tarfile`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import git

AUTHOR = {"GIT_AUTHOR_NAME": "labcoat", "GIT_AUTHOR_EMAIL": "labcoat@localhost",
          "GIT_COMMITTER_NAME": "labcoat", "GIT_COMMITTER_EMAIL": "labcoat@localhost"}
BEST_BRANCH = "labcoat/best"
BIG_FILE = 16 << 20
"""Files above this size are stored by `git hash-object` (streamed, hashed once) rather than
through fast-import, which hashes its pack a second time when it closes it."""


def subtask_branch(subtask_id: str) -> str:
    return f"labcoat/subtask-{subtask_id}"


class Workspace:
    """A git repository under the run directory, driven through plumbing commands."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.repo = git.Repo(path)
        self._trees: dict[str, str] = {}
        """Commit -> tree: immutable, so looked up once."""

    @classmethod
    def create(cls, src: Path, dest: Path) -> tuple[Workspace, str]:
        """Copy `src` into a new repo at `dest` and make the initial commit; returns its sha."""
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".git", "__pycache__"))
        repo = git.Repo.init(dest, initial_branch="main")
        with repo.config_writer() as cfg:
            cfg.set_value("core", "fsync", "all")
            cfg.set_value("user", "name", "labcoat")
            cfg.set_value("user", "email", "labcoat@localhost")
        ws = cls(dest)
        tree = ws.write_tree(dest)
        sha = ws.commit(tree, parent=None, message="labcoat: initial workspace")
        ws.repo.git.update_ref("refs/heads/main", sha)
        ws.repo.git.read_tree(sha)  # the repo's own index matches main, so `git status` is clean
        return ws, sha

    def _git(self, *args: str, index: str | None = None, work_tree: Path | None = None) -> str:
        env = dict(AUTHOR)
        if index:
            env["GIT_INDEX_FILE"] = index
        prefix = ["--work-tree", str(work_tree)] if work_tree else []
        return self.repo.git.execute(["git", *prefix, *args], env={**os.environ, **env})

    def write_tree(self, folder: Path) -> str:
        """Store `folder`'s files as a git tree (honouring its .gitignore); returns the tree sha.

        A nested git repository is stored as its files, never as a submodule pointer (which would
        drop them from every export): its `.git` is set aside while git lists the folder. All
        blobs go into one pack through `git fast-import`; `git add` wrote one loose object file
        (and, with `core.fsync`, one fsync) per file, which took minutes for 100k small files.
        """
        names = self._listed(folder)
        ref = f"refs/labcoat/tmp/tree-{secrets.token_hex(8)}"
        cmd = ["git", "-C", str(self.path), "fast-import", "--quiet"]
        with tempfile.TemporaryFile() as err, subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stderr=err, env=self._env(), bufsize=1 << 20) as proc:
            assert proc.stdin is not None
            try:
                _feed_commit(proc.stdin, folder, names, ref, self._hash_object)
            except BrokenPipeError:
                pass  # git stopped reading: its exit code and stderr say why
            finally:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
            if proc.wait() != 0:
                err.seek(0)
                raise git.GitCommandError(cmd, proc.returncode, err.read())
        try:
            return self._git("rev-parse", f"{ref}^{{tree}}")
        finally:
            self._git("update-ref", "-d", ref)

    def _listed(self, folder: Path) -> list[bytes]:
        """Files git would add from `folder` (not ignored), with nested repositories opened."""
        aside = f".git.labcoat-aside-{secrets.token_hex(4)}"
        moved: list[Path] = []
        try:
            while True:
                names = self._ls_others(folder, aside)
                repos = [n for n in names if n.endswith(b"/")]  # nested repositories
                if not repos:
                    return names
                for repo in repos:
                    inner = folder / os.fsdecode(repo) / ".git"
                    inner.rename(inner.with_name(aside))
                    moved.append(inner)
        finally:
            for inner in reversed(moved):
                inner.with_name(aside).rename(inner)

    def _ls_others(self, folder: Path, aside: str) -> list[bytes]:
        cmd = ["git", f"--git-dir={self.repo.git_dir}", f"--work-tree={folder.resolve()}",
               "ls-files", "-z", "--others", "--exclude-standard", "--", ".",
               f":(exclude,glob)**/{aside}", f":(exclude,glob)**/{aside}/**"]
        env = self._env() | {"GIT_INDEX_FILE": os.path.join(self.repo.git_dir, aside)}
        out = subprocess.run(cmd, capture_output=True, env=env, cwd=folder)
        if out.returncode != 0:
            raise git.GitCommandError(cmd, out.returncode, out.stderr)
        return [n for n in out.stdout.split(b"\0") if n]

    def _hash_object(self, path: bytes) -> bytes:
        """Store one file as a blob, byte for byte (no filters); its sha."""
        cmd = ["git", "-C", str(self.path), "hash-object", "-w", "--no-filters", "--",
               os.fsdecode(path)]
        out = subprocess.run(cmd, capture_output=True, env=self._env())
        if out.returncode != 0:
            raise git.GitCommandError(cmd, out.returncode, out.stderr)
        return out.stdout.strip()

    def _env(self) -> dict[str, str]:
        return {**os.environ, **AUTHOR}

    def commit(self, tree: str, *, parent: str | None, message: str) -> str:
        args = ["commit-tree", tree, "-m", message]
        if parent:
            args[2:2] = ["-p", parent]
        return self._git(*args)

    def set_branch(self, name: str, sha: str) -> None:
        self._git("update-ref", f"refs/heads/{name}", sha)

    def branch_sha(self, name: str) -> str | None:
        try:
            return self._git("rev-parse", "--verify", "--quiet", f"refs/heads/{name}")
        except git.GitCommandError:
            return None

    def tree_of(self, rev: str) -> str:
        """The tree of a commit (cached when `rev` is a full sha: those never change)."""
        if rev in self._trees:
            return self._trees[rev]
        tree = self._git("rev-parse", f"{rev}^{{tree}}")
        if len(rev) == 40:
            self._trees[rev] = tree
        return tree

    def export(self, rev: str, dest: Path) -> None:
        """Materialise the tree of `rev` (a commit or tree sha) into `dest`, streamed: memory
        stays flat whatever the size of the files (a 500 MB file once cost 1.5 GB of RSS)."""
        dest.mkdir(parents=True, exist_ok=True)
        cmd = ["git", "-C", str(self.path), "archive", "--format=tar", rev]
        with tempfile.TemporaryFile() as err, subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=err, env=self._env()) as proc:
            assert proc.stdout is not None
            try:
                with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                    tar.extractall(dest, filter="data")
            except tarfile.ReadError:
                if proc.wait() == 0:  # not git's failure: the stream itself was bad
                    raise
            finally:
                proc.stdout.close()
            if proc.wait() != 0:
                err.seek(0)
                raise git.GitCommandError(cmd, proc.returncode, err.read())

    def diff(self, a: str, b: str, *, max_chars: int = 20_000) -> str:
        text = self._git("diff", "--stat", "--patch", a, b)
        if len(text) > max_chars:
            text = text[:max_chars] + f"\n[... diff truncated at {max_chars} characters ...]"
        return text


def _feed_commit(out: IO[bytes], folder: Path, names: list[bytes], ref: str,
                 store_big: Callable[[bytes], bytes]) -> None:
    """A `git fast-import` stream: one commit on `ref` holding `names` read from `folder`."""
    out.write(f"commit {ref}\ncommitter labcoat <labcoat@localhost> 0 +0000\ndata 0\n".encode())
    root = os.fsencode(folder)
    for name in names:
        _feed_file(out, os.path.join(root, name), name, store_big)
    out.write(b"\n")


def _feed_file(out: IO[bytes], path: bytes, name: bytes,
               store_big: Callable[[bytes], bytes]) -> None:
    st = os.lstat(path)
    quoted = _quote(name)
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(path)
        out.write(b"M 120000 inline %s\ndata %d\n%s\n" % (quoted, len(target), target))
        return
    if not stat.S_ISREG(st.st_mode):
        return  # git stores only files and links
    mode = b"100755" if st.st_mode & stat.S_IXUSR else b"100644"
    if st.st_size > BIG_FILE:
        out.write(b"M %s %s %s\n" % (mode, store_big(path), quoted))
        return
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        out.write(b"M %s inline %s\ndata %d\n" % (mode, quoted, size))
        _copy_exactly(fd, out, size, name)
    finally:
        os.close(fd)
    out.write(b"\n")


def _copy_exactly(fd: int, out: IO[bytes], size: int, name: bytes) -> None:
    left = size
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise OSError(f"{os.fsdecode(name)} shrank while it was being committed")
        out.write(chunk)
        left -= len(chunk)


def _quote(name: bytes) -> bytes:
    """A C-style quoted path for fast-import (any byte but NUL may be in a file name)."""
    body = name.replace(b"\\", b"\\\\").replace(b'"', b'\\"').replace(b"\n", b"\\n")
    return b'"' + body + b'"'
