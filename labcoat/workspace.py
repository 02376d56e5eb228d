"""The run's git workspace: every subtask's result is a commit; `labcoat/best` follows the best.

Trees are written through a private index per call (`GIT_INDEX_FILE`), so subtasks running at the
same time never share the index and the work tree of the repository is never touched.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import git

AUTHOR = {"GIT_AUTHOR_NAME": "labcoat", "GIT_AUTHOR_EMAIL": "labcoat@localhost",
          "GIT_COMMITTER_NAME": "labcoat", "GIT_COMMITTER_EMAIL": "labcoat@localhost"}
BEST_BRANCH = "labcoat/best"


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
        """Store `folder`'s files as a git tree (honouring its .gitignore); returns the tree sha."""
        fd, index = tempfile.mkstemp(prefix="labcoat-index-")
        os.close(fd)
        os.unlink(index)  # git wants to create the index itself
        try:
            self._git("add", "--all", ".", index=index, work_tree=folder)
            return self._git("write-tree", index=index)
        finally:
            Path(index).unlink(missing_ok=True)

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
        """Materialise the tree of `rev` (a commit or tree sha) into `dest`."""
        dest.mkdir(parents=True, exist_ok=True)
        data = self.repo.git.execute(["git", "archive", "--format=tar", rev],
                                     stdout_as_string=False)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(dest, filter="data")

    def diff(self, a: str, b: str, *, max_chars: int = 20_000) -> str:
        text = self._git("diff", "--stat", "--patch", a, b)
        if len(text) > max_chars:
            text = text[:max_chars] + f"\n[... diff truncated at {max_chars} characters ...]"
        return text
