"""The run's git workspace, on real git repositories."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from labcoat.workspace import BEST_BRANCH, Workspace


def make_src(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "train.py").write_text("print('hi')\n")
    (src / "pkg" / "a.txt").write_text("a\n")
    (src / ".gitignore").write_text("outputs/\n")
    return src


def test_initial_commit_and_clean_status(tmp_path: Path) -> None:
    ws, sha = Workspace.create(make_src(tmp_path), tmp_path / "ws")
    assert ws.branch_sha("main") == sha
    assert ws.repo.git.status("--porcelain") == ""


def test_subtask_commit_is_isolated_and_respects_gitignore(tmp_path: Path) -> None:
    ws, base = Workspace.create(make_src(tmp_path), tmp_path / "ws")
    work = tmp_path / "work"
    ws.export(base, work)
    (work / "params.json").write_text('{"C": 1}\n')
    (work / "outputs").mkdir()
    (work / "outputs" / "big.bin").write_bytes(b"x" * 10)
    tree = ws.write_tree(work)
    sha = ws.commit(tree, parent=base, message="it001-01 engineer: C=1 (accuracy=0.9)")
    ws.set_branch(BEST_BRANCH, sha)
    assert ws.branch_sha(BEST_BRANCH) == sha
    files = ws.repo.git.ls_tree("-r", "--name-only", sha).split()
    assert "params.json" in files and not any(f.startswith("outputs") for f in files)
    assert "+{\"C\": 1}" in ws.diff(base, sha)
    assert ws.repo.git.status("--porcelain") == ""  # the repo's own work tree is untouched


def test_same_content_same_tree(tmp_path: Path) -> None:
    ws, base = Workspace.create(make_src(tmp_path), tmp_path / "ws")
    a, b = tmp_path / "a", tmp_path / "b"
    ws.export(base, a)
    ws.export(base, b)
    assert ws.write_tree(a) == ws.write_tree(b) == ws.tree_of(base)


# ---- trees written through fast-import, nested repositories, streamed exports -------------------


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout


def _tree_by_git_add(ws: Workspace, folder: Path, tmp: Path) -> str:
    """What plain `git add --all` + `write-tree` makes of `folder` (the reference)."""
    env = {**os.environ, "GIT_INDEX_FILE": str(tmp / "reference-index")}
    base = ["git", f"--git-dir={ws.repo.git_dir}", f"--work-tree={folder}"]
    subprocess.run([*base, "add", "--all", "."], cwd=folder, env=env, check=True)
    return subprocess.run([*base, "write-tree"], cwd=folder, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_write_tree_matches_git_add(tmp_path: Path) -> None:
    """Modes, symlinks, ignores, empty files and names no shell likes: the same tree as git's."""
    ws, _ = Workspace.create(make_src(tmp_path), tmp_path / "ws")
    work = tmp_path / "work"
    (work / "deep" / "er").mkdir(parents=True)
    (work / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (work / "run.sh").chmod(0o755)
    (work / "empty").write_bytes(b"")
    (work / "deep" / "er" / "data.bin").write_bytes(bytes(range(256)) * 100)
    (work / "big.bin").write_bytes(os.urandom(1 << 16) * 260)  # over BIG_FILE: hash-object
    (work / "big.bin").chmod(0o755)
    (work / "link").symlink_to("deep/er/data.bin")
    (work / ".gitignore").write_text("*.log\ncache/\n")
    (work / "noise.log").write_text("ignored\n")
    (work / "cache").mkdir()
    (work / "cache" / "x").write_text("ignored\n")
    for name in ['with space', 'quote"d', 'back\\slash', 'new\nline', '"leading']:
        (work / name).write_text(name)
    (work / os.fsdecode(b"latin-\xe9")).write_text("not utf-8\n")
    assert ws.write_tree(work) == _tree_by_git_add(ws, work, tmp_path)


def test_write_tree_of_an_empty_folder(tmp_path: Path) -> None:
    ws, _ = Workspace.create(make_src(tmp_path), tmp_path / "ws")
    (tmp_path / "empty").mkdir()
    assert ws.write_tree(tmp_path / "empty") == "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def _nested_repo(folder: Path) -> None:
    """`folder/lib` a repository with a commit, `folder/lib/vendor/inner` one inside it."""
    inner = folder / "lib" / "vendor" / "inner"
    inner.mkdir(parents=True)
    (folder / "lib" / "code.py").write_text("print('lib')\n")
    (inner / "deep.txt").write_text("deep\n")
    for repo in (inner, folder / "lib"):
        _git(repo, "init", "-q")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-qm", "nested")


def _files(ws: Workspace, rev: str) -> dict[str, str]:
    """path -> mode of every entry in `rev`'s tree."""
    out = ws.repo.git.ls_tree("-r", rev)
    return {line.split("\t", 1)[1]: line.split()[0] for line in out.splitlines()}


def test_nested_repository_in_a_result_is_committed_as_files(tmp_path: Path) -> None:
    """A role's workspace holding git repositories: their files are in the tree, no gitlinks."""
    ws, base = Workspace.create(make_src(tmp_path), tmp_path / "ws")
    work = tmp_path / "work"
    ws.export(base, work)
    _nested_repo(work)
    tree = ws.write_tree(work)
    files = _files(ws, tree)
    assert files["lib/code.py"] == "100644" and files["lib/vendor/inner/deep.txt"] == "100644"
    assert "160000" not in files.values()  # no submodule pointers
    assert not any("/.git" in path for path in files)
    assert (work / "lib" / ".git").is_dir() and (work / "lib/vendor/inner/.git").is_dir()
    out = tmp_path / "out"
    ws.export(tree, out)
    assert (out / "lib" / "vendor" / "inner" / "deep.txt").read_text() == "deep\n"


def test_nested_repository_in_the_starting_workspace(tmp_path: Path) -> None:
    src = make_src(tmp_path)
    _nested_repo(src)
    ws, base = Workspace.create(src, tmp_path / "ws")
    files = _files(ws, base)
    assert {"lib/code.py", "lib/vendor/inner/deep.txt"} <= set(files)
    assert "160000" not in files.values()


# The child's own high-water mark (VmHWM, this address space only). Not ru_maxrss: Linux carries
# the parent's peak across fork and exec into it, so a child of a pytest that has grown to 900 MB
# reported 900 MB whatever the export did.
EXPORT_CHILD = """
import re, sys
from pathlib import Path
from labcoat.workspace import Workspace
Workspace(Path(sys.argv[1])).export(sys.argv[2], Path(sys.argv[3]))
status = Path("/proc/self/status").read_text()
print(int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) * 1024)
"""


@pytest.mark.slow
def test_export_streams_a_500_mb_file(tmp_path: Path) -> None:
    """The export's peak RSS stays far below the file's size (it once read it whole)."""
    src = make_src(tmp_path)
    size = 500 * 10**6
    with open(src / "weights.bin", "wb") as fh:
        block = bytes(1 << 20)  # zeros: git compresses them fast
        for _ in range(size // len(block)):
            fh.write(block)
    ws, base = Workspace.create(src, tmp_path / "ws")
    (src / "weights.bin").unlink()
    out = tmp_path / "out"
    child = subprocess.run([sys.executable, "-c", EXPORT_CHILD, str(ws.path), base, str(out)],
                           capture_output=True, text=True, check=True)
    peak = int(child.stdout.strip())
    assert (out / "weights.bin").stat().st_size == size // (1 << 20) * (1 << 20)
    assert peak < 150 * 10**6, f"export peaked at {peak / 1e6:.0f} MB of RSS"
