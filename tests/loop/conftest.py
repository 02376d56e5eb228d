"""A tiny experiment made per test: fast to run, with a known optimum and seed noise."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

LABCOAT = str(Path(sys.executable).with_name("labcoat"))

TRAIN = '''
import json, os, pathlib
p = pathlib.Path("params.json")
params = json.loads(p.read_text()) if p.exists() else {}
x = float(params.get("x", 0.1))
# The engineer's params.json and the LABCOAT_PARAM_* variable must agree.
assert float(os.environ.get("LABCOAT_PARAM_X", x)) == x, os.environ.get("LABCOAT_PARAM_X")
pathlib.Path("outputs").mkdir(exist_ok=True)
pathlib.Path("outputs/x.txt").write_text(repr(x))
print("trained with x =", x)
'''

EVALUATE = '''
import json, os, pathlib, random
x = float(pathlib.Path("outputs/x.txt").read_text())
noise = random.Random(int(os.environ.get("LABCOAT_SEED", "0"))).gauss(0, 0.002)
print("evaluating")
print(json.dumps({"score": round(1 - (x - 0.7) ** 2 + noise, 6), "x": x}))
'''


def make_experiment(root: Path, **overrides: object) -> Path:
    """Write experiment.yaml, workspace/ and grader/ under `root`; return the folder."""
    (root / "workspace").mkdir(parents=True)
    (root / "grader").mkdir()
    (root / "workspace" / "train.py").write_text(textwrap.dedent(TRAIN))
    (root / "grader" / "evaluate.py").write_text(textwrap.dedent(EVALUATE))
    spec: dict[str, object] = {
        "name": "toy", "goal": "Maximise score by choosing x.",
        "run": "python3 train.py", "evaluate": "python3 /grader/evaluate.py",
        "metric": {"name": "score", "direction": "maximize"},
        "resources": {"cpus": 0.5, "memory": "256m", "timeout_s": 60},
        "search_space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        "critic": {"seeds": 2},
    }
    spec.update(overrides)
    (root / "experiment.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return root


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    return make_experiment(tmp_path / "toy")


def labcoat(*args: str, cwd: Path | None = None, timeout: float = 600,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LABCOAT, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env={**os.environ, **(env or {})})


def run_dir_of(proc: subprocess.CompletedProcess[str]) -> Path:
    first = proc.stdout.strip().splitlines()[0]
    return Path(first)
