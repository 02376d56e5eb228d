"""`labcoat init [DIR]`: turn a project folder into an experiment.

The project's files move into `DIR/workspace/`, the ones that belong to the grader (held-out
labels, a scoring script) into `DIR/grader/`; `DIR/experiment.yaml` is written with a comment
on every field, and `DIR/grader/evaluate.py` (a skeleton to finish) when no evaluate command
is given. Hidden entries (`.git`, `.venv`, ...) stay where they are.

Before anything in DIR changes, the experiment is assembled in a temporary copy, validated as
`labcoat run` would validate it, and its baseline run once through the real grading pipeline
(`run` in a sandbox without the grader, then `evaluate` with the grader read-only). When that
fails, or when DIR already holds what init would write and `--force` is not given, the answer
is one message and exit 2, and DIR is left as it was.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from labcoat.errors import ConfigError
from labcoat.experiment import SPEC_FILE, Experiment, load_experiment
from labcoat.orchestrator.initfiles import SKELETON, guess_direction, spec_text

if TYPE_CHECKING:
    from labcoat.orchestrator.grading import GradeOutcome

SKELETON_CMD = "python3 /grader/evaluate.py"


class InitOptions(BaseModel):
    """What `labcoat init` was asked for (flags or answers)."""

    model_config = ConfigDict(extra="forbid")

    folder: Path
    run: str = Field(min_length=1)
    """The command that runs the project (`python3 train.py`)."""
    metric: str = Field(min_length=1)
    """The metric's key in evaluate's JSON object."""
    direction: Literal["maximize", "minimize"] | None = None
    """None: guessed from the metric's name (loss, error, time: minimize)."""
    grader: list[str] = Field(default_factory=list)
    """Project paths that belong to the grader (moved to grader/)."""
    evaluate: str | None = None
    """The scoring command; None: grader/evaluate.py, a skeleton to finish."""
    name: str | None = None
    force: bool = False
    check: bool = True
    """Run the baseline once in a sandbox before writing anything."""


def init_experiment(opts: InitOptions) -> Path:
    """Make `opts.folder` an experiment; returns the experiment.yaml written."""
    folder = opts.folder.resolve()
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder; fix: pass the project folder to turn into "
                          "an experiment")
    grader = [_inside(folder, g) for g in opts.grader]
    _refuse_overwrites(folder, opts)
    with tempfile.TemporaryDirectory(prefix="labcoat-init-") as tmp:
        staged = Path(tmp) / folder.name
        _assemble(folder, staged, grader, opts, copy=True)
        exp = load_experiment(staged)
        if opts.check:
            check_baseline(exp)
    _assemble(folder, folder, grader, opts, copy=False)
    return folder / SPEC_FILE


def _inside(folder: Path, rel: str) -> PurePosixPath:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or not (folder / rel).exists():
        raise ConfigError(f"--grader {rel}: not a path inside {folder}; fix: give a file or "
                          "folder of the project, relative to it (e.g. `labels.npy`)")
    return path


def _refuse_overwrites(folder: Path, opts: InitOptions) -> None:
    taken = [SPEC_FILE] * (folder / SPEC_FILE).exists()
    if (folder / "workspace").exists() and not (folder / SPEC_FILE).exists():
        taken.append("workspace/")
    if opts.evaluate is None and (folder / "grader" / "evaluate.py").exists():
        taken.append("grader/evaluate.py")
    if taken and not opts.force:
        raise ConfigError(f"{folder} already has {', '.join(taken)}; nothing was changed. fix: "
                          "pass --force to write over them, or init another folder")


def _project_entries(folder: Path) -> list[Path]:
    """What becomes the workspace: the folder's entries, hidden ones and the layout aside."""
    if (folder / "workspace").is_dir():
        return []  # already an experiment's layout (init again with --force)
    skip = {SPEC_FILE, "workspace", "grader", "roles", "prompts"}
    return [p for p in sorted(folder.iterdir()) if p.name not in skip
            and not p.name.startswith(".")]


def _assemble(source: Path, target: Path, grader: Sequence[PurePosixPath], opts: InitOptions,
              *, copy: bool) -> None:
    """Lay the experiment out in `target` from the project in `source`: copied (a staging
    folder) or moved in place."""
    ws, gr = target / "workspace", target / "grader"
    for entry in [p for p in [source / g for g in grader] if p.exists()]:
        _transfer(entry, gr / entry.relative_to(source), copy)
    for entry in _project_entries(source):
        _transfer(entry, ws / entry.name, copy)
    if copy and (source / "workspace").is_dir():
        shutil.copytree(source / "workspace", ws, symlinks=True)
    if copy and (source / "grader").is_dir():
        shutil.copytree(source / "grader", gr, symlinks=True, dirs_exist_ok=True)
    if copy and not (source / "workspace").is_dir():
        for g in grader:  # a grader file inside a copied project folder is not the agents'
            _remove(ws / g)
    ws.mkdir(parents=True, exist_ok=True)
    if opts.evaluate is None:
        gr.mkdir(parents=True, exist_ok=True)
        (gr / "evaluate.py").write_text(SKELETON.format(metric=opts.metric))
    direction = opts.direction or guess_direction(opts.metric)
    (target / SPEC_FILE).write_text(spec_text(
        name=opts.name or source.name, run=opts.run, evaluate=opts.evaluate or SKELETON_CMD,
        metric=opts.metric, direction=direction, grader=[str(g) for g in grader]))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _transfer(src: Path, dst: Path, copy: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not copy:
        src.rename(dst)
    elif src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True)
    else:
        shutil.copy2(src, dst, follow_symlinks=False)


def check_baseline(exp: Experiment) -> None:
    """Grade the unmodified workspace once, as a run would (`ConfigError` saying why not)."""
    from labcoat.orchestrator.commands import preflight

    preflight(exp)
    outcome = asyncio.run(grade_workspace(exp))
    if outcome.ok:
        print(f"baseline: {exp.spec.metric.name} = {outcome.metric:.6g} "
              f"(graded in {outcome.duration_s:.1f} s)")
        return
    raise ConfigError(f"the baseline does not run as an experiment: {outcome.error}; nothing "
                      "was changed. fix: correct --run / --evaluate (evaluate's last stdout "
                      f"line must be a JSON object with {exp.spec.metric.name!r}), or pass "
                      "--no-check to write it as it is")


async def grade_workspace(exp: Experiment, workspace: Path | None = None, *,
                          seed: int = 0) -> GradeOutcome:
    """Grade a folder (default: the experiment's workspace/) once, as a run grades a result:
    `run` in a fresh sandbox without the grader, `evaluate` in another with it. No run
    directory is made: the log of the grading is a temporary one."""
    from labcoat.experiment import grader_hash
    from labcoat.log import Journal
    from labcoat.orchestrator.grading import Grader
    from labcoat.sandboxes.docker import DockerProvider

    # Unique: closing the provider removes every container of its run id, any process's.
    run_id = f"init-{exp.spec.name}"[:31] + f"-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="labcoat-init-grade-") as tmp:
        def export(rev: str, folder: Path) -> None:
            shutil.copytree(workspace or exp.workspace_dir, folder, symlinks=True)

        with Journal.open(Path(tmp) / "run", run_id, create=True) as journal:
            async with DockerProvider(run_id=run_id) as box:
                grader = Grader(experiment=exp, provider=box, run_id=run_id,
                                expected_hash=grader_hash(exp), export=export,
                                emit=journal.append, artifacts=Path(tmp) / "artifacts")
                return await grader.grade("workspace", subtask_id="baseline", seed=seed,
                                          iteration=0)
