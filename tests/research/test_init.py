"""`labcoat init` turns a copy of a small project into an experiment that `labcoat run` accepts:
the project's files into workspace/, the grader's into grader/, a commented experiment.yaml, the
baseline graded once in real sandboxes before anything changes. It asks nothing with `--yes`,
and refuses to write over an experiment without `--force`."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml

from labcoat.log import load_state
from tests.loop.conftest import labcoat, run_dir_of

TRAIN = """
import json, pathlib
p = pathlib.Path("params.json")
w = float(json.loads(p.read_text()).get("w", 1.0)) if p.exists() else 1.0
xs = json.loads(pathlib.Path("data/x.json").read_text())
pathlib.Path("outputs").mkdir(exist_ok=True)
pathlib.Path("outputs/pred.json").write_text(json.dumps([w * x for x in xs]))
"""

SCORE = """
import json, pathlib
y = json.loads(pathlib.Path("/grader/data/y.json").read_text())
p = json.loads(pathlib.Path("outputs/pred.json").read_text())
print(json.dumps({"mse": sum((a - b) ** 2 for a, b in zip(p, y)) / len(y)}))
"""


def project(root: Path) -> Path:
    """A small project as people have them: code, data, a scoring script, held-out labels."""
    (root / "data").mkdir(parents=True)
    (root / "train.py").write_text(textwrap.dedent(TRAIN))
    (root / "score.py").write_text(textwrap.dedent(SCORE))
    (root / "data" / "x.json").write_text("[1, 2, 3, 4]")
    (root / "data" / "y.json").write_text("[2, 4, 6, 8]")
    (root / ".git").mkdir()  # hidden entries stay where they are
    return root


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.mark.docker
def test_init_turns_a_project_into_an_experiment_that_run_accepts(tmp_path: Path) -> None:
    folder = project(tmp_path / "proj")
    proc = labcoat("init", str(folder), "--yes", "--metric", "mse", "--grader", "score.py",
                   "--grader", "data/y.json", "--evaluate", "python3 /grader/score.py")
    assert proc.returncode == 0, proc.stderr
    assert "baseline: mse = 7.5" in proc.stdout  # graded once in sandboxes: (1-2)^2..(4-8)^2
    assert sorted(tree(folder)) == ["experiment.yaml", "grader/data/y.json", "grader/score.py",
                                    "workspace/data/x.json", "workspace/train.py"]
    assert (folder / ".git").is_dir()
    text = (folder / "experiment.yaml").read_text()
    assert "# Runs on the outputs of `run`, with grader/ read-only at /grader" in text
    spec = yaml.safe_load(text)
    assert spec["run"] == "python3 train.py" and spec["metric"] == {
        "name": "mse", "direction": "minimize"}  # guessed from the name
    spec["search_space"] = {"w": {"type": "float", "low": 1.5, "high": 2.5}}
    (folder / "experiment.yaml").write_text(yaml.safe_dump(spec))
    ran = labcoat("run", str(folder), "--max-iterations", "1", "--parallel", "1",
                  "--runs-dir", str(tmp_path / "runs"))
    assert ran.returncode == 0, ran.stderr
    state = load_state(run_dir_of(ran))
    assert state.baseline == 7.5 and state.best is not None and state.best.metric < 7.5


@pytest.mark.docker
def test_a_baseline_that_does_not_run_changes_nothing(tmp_path: Path) -> None:
    folder = project(tmp_path / "proj")
    before = tree(folder)
    proc = labcoat("init", str(folder), "--yes", "--run", "python3 trian.py", "--metric", "mse",
                   "--grader", "score.py", "--grader", "data/y.json",
                   "--evaluate", "python3 /grader/score.py")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("labcoat: error:") == 1
    assert "the baseline does not run as an experiment" in proc.stderr
    assert "trian.py" in proc.stderr and "nothing was changed" in proc.stderr
    assert tree(folder) == before


@pytest.mark.slow
def test_init_writes_a_grader_skeleton_and_refuses_to_overwrite(tmp_path: Path) -> None:
    folder = project(tmp_path / "proj")
    first = labcoat("init", str(folder), "--yes", "--no-check", "--metric", "accuracy",
                    "--grader", "data/y.json")
    assert first.returncode == 0, first.stderr
    skeleton = (folder / "grader" / "evaluate.py").read_text()
    assert "TODO: compute 'accuracy'" in skeleton
    spec = yaml.safe_load((folder / "experiment.yaml").read_text())
    assert spec["evaluate"] == "python3 /grader/evaluate.py"
    assert spec["metric"]["direction"] == "maximize"
    (folder / "workspace" / "outputs").mkdir()
    (folder / "workspace" / "outputs" / "metrics.json").write_text(json.dumps({"accuracy": 0.5}))
    before = tree(folder)
    again = labcoat("init", str(folder), "--yes", "--no-check", "--metric", "loss")
    assert again.returncode == 2 and "already has experiment.yaml" in again.stderr
    assert "fix: pass --force" in again.stderr and tree(folder) == before
    forced = labcoat("init", str(folder), "--yes", "--no-check", "--metric", "loss", "--force")
    assert forced.returncode == 0, forced.stderr
    assert yaml.safe_load((folder / "experiment.yaml").read_text())["metric"] == {
        "name": "loss", "direction": "minimize"}
    assert (folder / "workspace" / "train.py").read_bytes() == before["workspace/train.py"]


@pytest.mark.slow
def test_init_without_questions_says_what_is_missing(tmp_path: Path) -> None:
    folder = project(tmp_path / "proj")
    (folder / "train.py").rename(folder / "fit.py")
    proc = labcoat("init", str(folder), "--yes", "--metric", "mse")
    assert proc.returncode == 2 and "pass --run CMD" in proc.stderr
    proc = labcoat("init", str(folder), "--yes", "--run", "python3 fit.py")
    assert proc.returncode == 2 and "pass --metric NAME" in proc.stderr
    proc = labcoat("init", str(folder), "--yes", "--run", "python3 fit.py", "--metric", "m",
                   "--grader", "../elsewhere")
    assert proc.returncode == 2 and "--grader ../elsewhere: not a path inside" in proc.stderr
    assert not (folder / "experiment.yaml").exists()
