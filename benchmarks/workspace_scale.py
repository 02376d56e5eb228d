"""Committing a workspace of many small files: prints one JSON object.

For N small files (one line each, 1000 per folder) in a folder like a sandbox's /workspace:

* `copy_out_s`: `files.copy_out` (the safe copy out of a sandbox's host folder) into a fresh
  folder, as `get_dir("/workspace")` does when a role's result is collected;
* `write_tree_s`: `Workspace.write_tree` of that copy (git ls-files + one fast-import pack);
* `git_add_s`: the baseline, measured in the same run on the same files (in a second, fresh
  repository): what write_tree did before (`git add --all` into a private index, then
  `write-tree`), with the run repository's `core.fsync=all`; only up to `--baseline-max` files
  (100k took minutes);
* `export_s`: `Workspace.export` of the tree (git archive streamed into tarfile);
* `speedup`: git_add_s / write_tree_s.

Usage: `.venv/bin/python benchmarks/workspace_scale.py [--sizes 1000,10000,100000]
[--baseline-max 10000] [--dir DIR]`
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from labcoat.sandboxes import files
from labcoat.workspace import Workspace


def make_tree(root: Path, n: int) -> None:
    for i in range(n):
        folder = root / f"d{i // 1000:04d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        (folder / f"f{i}.txt").write_text(f"{i}\n")


def git_add_tree(ws: Workspace, folder: Path, index: Path) -> str:
    """The old write_tree: `git add --all` into a private index, then `write-tree`."""
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    base = ["git", f"--git-dir={ws.repo.git_dir}", f"--work-tree={folder}"]
    subprocess.run([*base, "add", "--all", "."], cwd=folder, env=env, check=True)
    return subprocess.run([*base, "write-tree"], cwd=folder, env=env, check=True,
                          capture_output=True, text=True).stdout.strip()


def timed(fn: object, *args: object) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)  # type: ignore[operator]
    return time.perf_counter() - start, out


def measure(root: Path, n: int, baseline: bool) -> dict[str, object]:
    src = root / "seed"
    src.mkdir()
    (src / "README").write_text("seed\n")
    ws, _ = Workspace.create(src, root / "repo")  # core.fsync=all, as every run's repo
    sandbox = root / "sandbox"
    make_tree(sandbox, n)
    copy_s, _ = timed(files.copy_out, sandbox, ".", root / "copy", files.Budget(max_total=None))
    tree_s, tree = timed(ws.write_tree, root / "copy")
    export_s, _ = timed(ws.export, str(tree), root / "export")
    row: dict[str, object] = {"files": n, "copy_out_s": round(copy_s, 3),
                              "write_tree_s": round(tree_s, 3), "export_s": round(export_s, 3)}
    if baseline:  # in a repository of its own, where none of the objects exist yet
        fresh, _ = Workspace.create(src, root / "baseline-repo")
        add_s, old_tree = timed(git_add_tree, fresh, root / "copy", root / "index")
        assert old_tree == tree, "write_tree and git add disagree"
        row |= {"git_add_s": round(add_s, 3), "speedup": round(add_s / tree_s, 1)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--baseline-max", type=int, default=10000)
    parser.add_argument("--dir", default=None, help="where the trees go (default: the temp dir)")
    args = parser.parse_args()
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        root = Path(tempfile.mkdtemp(prefix="labcoat-bench-ws-", dir=args.dir))
        try:
            rows.append(measure(root, n, n <= args.baseline_max))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({"benchmark": "workspace_scale", "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
