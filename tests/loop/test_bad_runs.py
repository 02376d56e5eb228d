"""Real runs fed what breaks runs: a host too small for the spec, a disk that fills while the run
directory is made, parameter names exec refuses, escape sequences from a sandbox, a plugin
role that raises inside a library. Each costs one message (or one subtask), never the run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from labcoat.log import Journal, load_state, read_events
from tests.loop.conftest import LABCOAT, labcoat, make_experiment, run_dir_of

pytestmark = pytest.mark.docker

PAYLOAD_TRAIN = r'''
import sys
sys.stdout.write("\x1b]0;pwned\x07\x1b[2J\x1b]8;;http://evil.example/\x1b\\link\x1b]8;;\x1b\\\n")
sys.stderr.write("\x1b[32mall tests passed\x1b[0m\rFAKE\x00nul\n")
sys.exit(1)
'''


@pytest.mark.parametrize(("resources", "why"), [
    ({"cpus": 500}, "500 CPUs per sandbox"),
    ({"memory": "1t"}, "1048576 MB of memory per sandbox"),
    ({"gpus": 4}, "4 GPU(s) per sandbox"),
])
def test_a_spec_the_host_cannot_hold_is_refused_before_the_run_dir(
        tmp_path: Path, resources: dict[str, object], why: str) -> None:
    exp = make_experiment(tmp_path / "big", resources={"timeout_s": 60, **resources})
    proc = labcoat("run", str(exp), "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("labcoat: error:") == 1 and why in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


DISK_SCRIPT = """
mount -t tmpfs -o size={size} none {mnt} || exit 90
{labcoat} run {exp} --runs-dir {mnt}/runs >{out}/out 2>{out}/err
echo $? >{out}/rc
ls -A {mnt}/runs >{out}/left 2>&1
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                    reason="needs root and util-linux unshare for a private tmpfs")
@pytest.mark.parametrize("size", ["96k", "400k"])  # fills during the copy / during git's commit
def test_a_disk_that_fills_while_the_run_dir_is_made_leaves_nothing(tmp_path: Path,
                                                                   size: str) -> None:
    exp = make_experiment(tmp_path / "toy")
    (exp / "workspace" / "data.bin").write_bytes(os.urandom(300_000))
    mnt, out = tmp_path / "mnt", tmp_path / "out"
    mnt.mkdir()
    out.mkdir()
    script = DISK_SCRIPT.format(size=size, mnt=mnt, out=out, labcoat=LABCOAT, exp=exp)
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                          timeout=300)
    if done.returncode == 90:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    err = (out / "err").read_text()
    assert (out / "rc").read_text().strip() == "1", err
    assert err.count("labcoat: error:") == 1 and "Traceback" not in err, err
    assert "no space left" in err and "nothing was kept" in err, err
    assert (out / "left").read_text().strip() == ""  # no run dir, no partial one
    assert (out / "out").read_text() == ""  # no run dir was announced


def test_param_names_exec_refuses_stay_in_params_json_and_cost_nothing(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy")
    params = {"a=b": 1, "x": 0.7, "nul": "a\u0000b"}
    (exp / "workspace" / "params.json").write_text(json.dumps(params))
    proc = labcoat("run", str(exp), "--max-iterations", "1", "--parallel", "2",
                   "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    state = load_state(run_dir_of(proc))
    assert state.status == "finished" and state.baseline is not None
    assert abs(state.baseline - 1.0) < 0.01  # x=0.7 reached the trial, a=b did not stop it
    assert all(e.ok for e in read_events(run_dir_of(proc)) if e.type == "graded")


def test_escape_sequences_from_a_sandbox_stay_inert_in_git_and_the_log(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy")
    (exp / "workspace" / "train.py").write_text(PAYLOAD_TRAIN)
    proc = labcoat("run", str(exp), "--max-iterations", "1", "--parallel", "2",
                   "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    run_dir = run_dir_of(proc)
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr
    messages = subprocess.run(["git", "-C", str(run_dir / "workspace"), "log", "--all",
                               "--format=%B"], capture_output=True, check=True).stdout.decode()
    assert "grading failed" in messages and "\\x1b[32mall tests passed" in messages
    assert "\x1b" not in messages and "\x00" not in messages and "\r" not in messages
    shown = labcoat("log", str(run_dir)).stdout
    assert "FAILED" in shown and "\x1b" not in shown and "\x07" not in shown


def test_a_plugin_that_raises_inside_a_library_points_at_its_own_line(
        tmp_path: Path, test_plugin: str) -> None:
    exp = make_experiment(tmp_path / "plug", roles=["reproducer", "engineer", "ablator"])
    (exp / "workspace" / "train.py").write_text(
        "import pathlib\npathlib.Path('outputs').mkdir(exist_ok=True)\n"
        "pathlib.Path('outputs/x.txt').write_text('0.7')\n")
    (exp / "workspace" / "params.json").write_text("{not json")  # the ablator's json.loads fails
    proc = labcoat("run", str(exp), "--max-iterations", "1", "--parallel", "2",
                   "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    run_dir = run_dir_of(proc)
    failed = [e for e in read_events(run_dir) if e.type == "subtask_failed" and e.role == "ablator"]
    assert failed, [e.type for e in read_events(run_dir)]
    error = failed[0].error
    assert "role ablator raised JSONDecodeError" in error
    assert "labcoat_test_plugin/roles.py:" in error and "json/decoder.py" not in error, error
    kept = run_dir / "artifacts" / failed[0].subtask_id / "role-traceback.txt"
    assert f"artifacts/{failed[0].subtask_id}/role-traceback.txt" in error
    text = kept.read_text()
    assert "json/decoder.py" in text and "_read_params" in text and "JSONDecodeError" in text


def test_resume_on_a_host_that_can_no_longer_hold_the_spec_writes_nothing(tmp_path: Path) -> None:
    exp = make_experiment(tmp_path / "toy", resources={"cpus": 500, "timeout_s": 60})
    run_dir = tmp_path / "runs" / "r1"  # as if started on a bigger machine, then moved here
    with Journal.open(run_dir, "r1", create=True) as journal:
        journal.append("run_started", config={"goal": "g", "max_iterations": 1},
                       experiment=load_experiment_dump(exp), experiment_dir=str(exp),
                       experiment_hash="e", grader_hash="g", labcoat_version="0", seed=0,
                       brain="search", base_commit="c0")
    before = (run_dir / "log.jsonl").read_bytes()
    proc = labcoat("resume", str(run_dir))
    assert proc.returncode == 2, proc.stderr
    assert "500 CPUs per sandbox" in proc.stderr and "Traceback" not in proc.stderr
    assert (run_dir / "log.jsonl").read_bytes() == before  # no run_resumed, no pause


def load_experiment_dump(exp: Path) -> dict[str, object]:
    """The spec as `run_started` holds it (validated, dumped); the host is not consulted."""
    from labcoat.experiment import load_experiment

    return load_experiment(exp).spec.model_dump(mode="json")
