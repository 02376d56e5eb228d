"""`labcoat view RUN_DIR --export DIR`: the run's pages as a static site (HTML and JSON) that
works from disk, with no server: attach it to a paper, a pull request or an email.

    DIR/index.html                 the run page            (index.json: its data)
    DIR/subtasks/<id>.html         each subtask            (.tN / .cN: later pages of its lists)
    DIR/manager/<iteration>.html   the manager's calls
    DIR/files/artifacts/...        the run's logs, each saved as .txt (never opened as HTML)
    DIR/static/                    the style sheet and the script (hover labels only)

The pages are the server's own pages, built from the same data with relative links. Nothing
is written to the run directory; DIR must be empty, new, or an earlier export.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from labcoat.errors import ConfigError
from labcoat.views.web.catalog import Catalog
from labcoat.views.web.files import listing
from labcoat.views.web.html import STATIC, render
from labcoat.views.web.index import MANAGER, RunIndex
from labcoat.views.web.links import PAGE, ExportLinks, manager_file, run_file, subtask_file
from labcoat.views.web.pages import build
from labcoat.views.web.runpage import PLANS_SHOWN, SUBTASK_ROWS

MARKER = ".labcoat-export"
"""A file that says a folder holds an export (which a new export may replace)."""


def export_site(run_dir: Path, dest: Path) -> Path:
    """Write the static site of `run_dir` into `dest`; returns the path of its index.html."""
    catalog = Catalog(run_dir)
    if not catalog.single:
        raise ConfigError(f"{run_dir}: not a run directory (it has no log.jsonl). Give one run, "
                          "e.g. runs/<run-id>.")
    dest = _prepare(catalog.target, dest.expanduser().absolute())
    name = catalog.names()[0]
    index = catalog.index(name, budget_s=None)  # the whole log, however long it takes
    assert index is not None  # a single run is always in its own catalog
    shutil.copytree(STATIC, dest / "static")
    _run(catalog, index, dest, name)
    for sid in list(index.state.subtasks):
        _subtask(catalog, index, dest, name, sid)
    for key in [k for k in index.calls if k.startswith(MANAGER + "@")]:
        _manager(catalog, index, dest, name, int(key.partition("@")[2]))
    _copy_files(index.run_dir, dest / "files")
    return dest / "index.html"


def _prepare(run_dir: Path, dest: Path) -> Path:
    real = dest.resolve()
    if real == run_dir.resolve() or real.is_relative_to(run_dir.resolve()):
        raise ConfigError(f"--export {dest}: inside the run directory; the viewer never writes "
                          "there. Choose a folder outside it.")
    if real.exists() and not real.is_dir():
        raise ConfigError(f"--export {dest}: a file, not a folder.")
    if real.is_dir() and any(real.iterdir()):
        if not (real / MARKER).is_file():
            raise ConfigError(f"--export {dest}: the folder is not empty. Choose a new or empty "
                              "folder (an earlier export is replaced).")
        shutil.rmtree(real)
    real.mkdir(parents=True, exist_ok=True)
    (real / MARKER).write_text("a static export of a labcoat run (labcoat view --export)\n")
    return real


def _page(catalog: Catalog, path: Path, kind: str, key: tuple[str, ...], query: dict[str, int],
          depth: int) -> None:
    page, template, extra = build(catalog, kind, key, query, links=ExportLinks(depth))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(template, page, **extra), encoding="utf-8")
    path.with_suffix(".json").write_text(page.model_dump_json(), encoding="utf-8")


def _run(catalog: Catalog, index: RunIndex, dest: Path, name: str) -> None:
    _page(catalog, dest / "index.html", "run", (name,), {}, 0)
    for s in range(0, len(index.state.subtasks), SUBTASK_ROWS):
        _page(catalog, dest / run_file(s=s), "run", (name,), {"s": s}, 0)
    for p in range(PLANS_SHOWN, len(index.plans), PLANS_SHOWN):
        _page(catalog, dest / run_file(p=p), "run", (name,), {"p": p}, 0)


def _subtask(catalog: Catalog, index: RunIndex, dest: Path, name: str, sid: str) -> None:
    calls, execs = len(index.calls.get(sid) or ()), len(index.execs.get(sid) or ())
    for t in range(0, max(calls, 1), PAGE):
        _page(catalog, dest / "subtasks" / subtask_file(sid, t=t), "subtask", (name, sid),
              {"t": t}, 1)
    for c in range(PAGE, execs, PAGE):
        _page(catalog, dest / "subtasks" / subtask_file(sid, c=c), "subtask", (name, sid),
              {"c": c}, 1)


def _manager(catalog: Catalog, index: RunIndex, dest: Path, name: str, iteration: int) -> None:
    calls = len(index.calls.get(f"{MANAGER}@{iteration}") or ())
    for t in range(0, max(calls, 1), PAGE):
        _page(catalog, dest / "manager" / manager_file(iteration, t=t), "manager",
              (name, str(iteration)), {"t": t}, 1)


def _copy_files(run_dir: Path, dest: Path) -> None:
    """The run's artifacts (regular files inside the run only), each as `<name>.txt`."""
    for folder in _artifact_dirs(run_dir):
        for rel, real in listing(run_dir, folder):
            target = dest / (rel + ".txt")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(real, target)


def _artifact_dirs(run_dir: Path) -> list[str]:
    root = run_dir / "artifacts"
    try:
        return sorted(f"artifacts/{p.name}" for p in root.iterdir() if p.is_dir())
    except OSError:
        return []
