"""Specs and experiment folders built to hurt: each gets one problem line and exit code 2, fast,
in bounded memory, before anything is created (YAML bombs, bad bytes, absurd resources)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labcoat.errors import SpecError
from labcoat.experiment import load_experiment, trial_env

LABCOAT = str(Path(sys.executable).with_name("labcoat"))
MINIMAL = """\
name: tiny
goal: make the number bigger
run: python train.py
evaluate: python /grader/score.py
metric: {name: score, direction: maximize}
"""
LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""
BILLION_LAUGHS = MINIMAL + LAUGHS


def experiment(root: Path, text: str | bytes = MINIMAL) -> Path:
    (root / "workspace").mkdir(parents=True)
    (root / "workspace" / "train.py").write_text("print('hi')\n")
    data = text if isinstance(text, bytes) else text.encode()
    (root / "experiment.yaml").write_bytes(data)
    return root


def problems(root: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_experiment(root)
    return str(info.value)


def run_bounded(*args: str, memory_gb: int = 2, timeout: float = 30,
                ) -> subprocess.CompletedProcess[str]:
    """`labcoat ARGS` with its address space capped: a regression fails, the machine does not."""
    cap = memory_gb << 30

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    return subprocess.run([LABCOAT, *args], capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit)


def test_billion_laughs_is_refused_fast_with_exit_2(tmp_path: Path) -> None:
    root = experiment(tmp_path / "bomb", BILLION_LAUGHS)
    assert len(LAUGHS) < 700  # 9**9 values once expanded
    start = time.monotonic()
    proc = run_bounded("run", str(root), "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 2, proc.stderr
    assert "expand to more than 10000 values" in proc.stderr and "Traceback" not in proc.stderr
    assert time.monotonic() - start < 20
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("cycle", ["x: &x [1, *x]\n", "x: &x {a: 1, b: *x}\n",
                                   "x: &x [[[*x]]]\n"])
def test_an_alias_inside_its_own_value_is_one_problem(tmp_path: Path, cycle: str) -> None:
    text = problems(experiment(tmp_path / "e", MINIMAL + cycle))
    assert "experiment.yaml:6: an alias (*name) refers to a value that contains it" in text


@pytest.mark.slow
def test_deep_nesting_and_huge_numbers_are_problems_not_crashes(tmp_path: Path) -> None:
    deep = problems(experiment(tmp_path / "deep", MINIMAL + "x: " + "[" * 5000 + "]" * 5000))
    assert "nested" in deep and "fix: flatten" in deep
    big = problems(experiment(tmp_path / "big", MINIMAL + "x: " + "7" * 5000 + "\n"))
    assert "a value cannot be read" in big


def test_ordinary_anchors_still_work(tmp_path: Path) -> None:
    root = experiment(tmp_path / "e", MINIMAL + """\
search_space:
  a: &unit {type: float, low: 0.0, high: 1.0}
  b: *unit
""")
    assert set(load_experiment(root).spec.search_space) == {"a", "b"}


def test_role_file_front_matter_gets_the_same_bounds(tmp_path: Path) -> None:
    root = experiment(tmp_path / "e")
    (root / "roles").mkdir()
    (root / "roles" / "bomb.md").write_text(
        "---\nname: bomb\ndescription: x\n" + LAUGHS + "---\nbody\n")
    (root / "roles" / "loop.md").write_text("---\nname: loop\ndescription: &d [*d]\n---\nbody\n")
    (root / "roles" / "latin1.md").write_bytes(b"---\nname: caf\xe9\ndescription: x\n---\nb\n")
    proc = run_bounded("run", str(root), "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "bomb.md:4: the aliases (*name) expand to more than" in proc.stderr
    assert "loop.md:3: an alias" in proc.stderr
    assert "latin1.md:2:10: not UTF-8 text (byte 0xe9)" in proc.stderr


def test_a_spec_that_is_not_utf8_is_one_line_with_exit_2(tmp_path: Path) -> None:
    root = experiment(tmp_path / "e", MINIMAL.encode() + b"description: caf\xe9 au lait\n")
    assert "experiment.yaml:6:17: not UTF-8 text (byte 0xe9); fix: save the file as UTF-8" \
        in problems(root)
    proc = run_bounded("run", str(root), "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists()


def test_a_huge_spec_file_is_refused_unread(tmp_path: Path) -> None:
    root = experiment(tmp_path / "e", MINIMAL + "# " + "x" * (2 << 20) + "\n")
    assert "larger than 1 MB" in problems(root)


def test_resources_past_what_any_host_or_timer_takes(tmp_path: Path) -> None:
    root = experiment(tmp_path / "e", MINIMAL + "resources: {pids: 1e11, timeout_s: 1e308, "
                                                 "gpus: 100, memory: 5000t}\n")
    text = problems(root)
    for field in ("resources.pids", "resources.timeout_s", "resources.gpus", "resources.memory"):
        assert f"experiment.yaml:6: {field}:" in text, text
    assert "at most 30 days" in text and "over 1 PB" in text


def test_a_grader_that_is_a_file_is_refused(tmp_path: Path) -> None:
    root = experiment(tmp_path / "e")
    (root / "grader").write_text("print(1)\n")
    assert "grader: not a folder, so no grade could ever see it" in problems(root)


def test_workspace_entries_a_run_could_not_take(tmp_path: Path) -> None:
    root = experiment(tmp_path / "e")
    (root / "workspace" / os.fsdecode(b"caf\xe9.csv")).write_text("1\n")
    os.mkfifo(root / "workspace" / "pipe")
    text = problems(root)
    assert "workspace/caf\\xe9.csv: file name is not UTF-8; fix: rename it" in text
    assert "workspace/pipe: not a file, folder or link (a FIFO" in text
    proc = run_bounded("run", str(root), "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists()


def test_trial_env_leaves_out_what_exec_would_refuse() -> None:
    params = {"a=b": 1, "x": 0.5, "nul": "a\x00b", "é": 1, "big": "x" * 20_000, "y\n": 2,
              "half": "\ud800", "ok_1": [1, 2]}
    assert trial_env(params, 3) == {"LABCOAT_SEED": "3", "LABCOAT_PARAM_X": "0.5",
                                    "LABCOAT_PARAM_OK_1": "[1, 2]"}
