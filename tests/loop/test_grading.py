"""Honest grading: a workspace cannot read or change the grader, and a changed grader is refused."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from labcoat.errors import GraderTampered
from labcoat.experiment import grader_hash, load_experiment
from labcoat.log import load_state
from labcoat.orchestrator.grading import GradeFailed, Grader, parse_metrics
from tests.loop.conftest import labcoat, make_experiment, run_dir_of

CHEAT = '''
import os, pathlib
pathlib.Path("outputs").mkdir(exist_ok=True)
leak = "none"
for path in ("/grader/secret.txt", "/grader/evaluate.py"):
    try:
        leak = pathlib.Path(path).read_text()
    except OSError as err:
        print("cannot read", path, err)
    try:
        pathlib.Path(path).write_text("print('{\\"score\\": 99}')")
    except OSError as err:
        print("cannot write", path, err)
pathlib.Path("outputs/leak.txt").write_text(leak)
'''

EVAL = '''
import json, pathlib
leak = pathlib.Path("outputs/leak.txt").read_text()
secret = pathlib.Path("/grader/secret.txt").read_text()
print(json.dumps({"score": 1.0 if secret in leak else 0.5}))
'''


@pytest.mark.docker
def test_workspace_cannot_read_or_overwrite_grader(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "cheat", search_space={}, roles=["reproducer"])
    (exp / "workspace" / "train.py").write_text(textwrap.dedent(CHEAT))
    (exp / "grader" / "evaluate.py").write_text(textwrap.dedent(EVAL))
    (exp / "grader" / "secret.txt").write_text("s3cret-labels")
    before = grader_hash(load_experiment(exp))
    proc = labcoat("run", str(exp), "--max-iterations", "1", "--runs-dir", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    state = load_state(run_dir_of(proc))
    assert state.baseline == 0.5
    assert grader_hash(load_experiment(exp)) == before


def test_changed_grader_is_refused(tmp_path: Path) -> None:
    exp = load_experiment(make_experiment(tmp_path / "g"))
    grader = Grader(experiment=exp, provider=None, run_id="r", expected_hash=grader_hash(exp),  # type: ignore[arg-type]
                    export=lambda rev, dest: None, emit=lambda *a, **k: None,
                    artifacts=tmp_path / "artifacts")
    grader.check_grader()
    (exp.grader_dir / "evaluate.py").write_text("print('{\"score\": 1}')\n")
    with pytest.raises(GraderTampered, match="changed since the run started"):
        grader.check_grader()


@pytest.mark.parametrize(("stdout", "expected"), [
    ('noise\n{"score": 0.5, "n": 3, "tag": "x", "ok": true}\n', {"score": 0.5, "n": 3.0}),
    ('{"score": 1}\n\n  \n', {"score": 1.0}),
])
def test_metrics_come_from_the_last_line(stdout: str, expected: dict[str, float]) -> None:
    assert parse_metrics(stdout) == expected


@pytest.mark.parametrize("stdout", ["", "done\n", '[1, 2]\n', '{"score": 1}\nbye\n'])
def test_bad_evaluate_output_is_a_grading_failure(stdout: str) -> None:
    with pytest.raises(GradeFailed):
        parse_metrics(stdout)


@pytest.mark.docker
def test_unsafe_outputs_fail_that_grade_not_the_run(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "evil", search_space={}, roles=["reproducer"])
    (exp / "workspace" / "train.py").write_text(
        "import os, pathlib\npathlib.Path('outputs').mkdir(exist_ok=True)\n"
        "os.symlink('/etc/shadow', 'outputs/x.txt')\n")
    proc = labcoat("run", str(exp), "--max-iterations", "1", "--runs-dir", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr
    state = load_state(run_dir_of(proc))
    grade = state.subtasks["it001-01"].own_grade
    assert state.status == "finished"
    assert grade is not None and not grade.ok and "cannot be taken" in (grade.error or "")
