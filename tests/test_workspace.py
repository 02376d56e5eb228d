"""The run's git workspace, on real git repositories."""

from __future__ import annotations

from pathlib import Path

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
