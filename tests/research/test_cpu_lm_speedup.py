"""experiments/cpu-lm-speedup: the grader times training itself, so what a candidate reports,
hides or smuggles in earns nothing. The bundled workspace with a hostile train.py is graded
once through the real pipeline (`run` in a sandbox without the grader, `evaluate` with it).
The search brain's real speedup (3 iterations, > 1.3) is benchmarks/research_quality.py's to
show: a run of it takes minutes."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from labcoat.experiment import load_experiment
from labcoat.orchestrator.init import grade_workspace

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

EXPERIMENT = Path(__file__).resolve().parents[2] / "experiments" / "cpu-lm-speedup"

# Every way around the grader's clock at once. `run` trains and caches the model with a plain
# copy of its text. The timed run then takes the baseline's fresh model if it can reach it, or
# reads the cipher key by lining up the enciphered text with a plain one (the grader's own,
# then its cached copy: a key is right when the whole text agrees with it) and renames the
# cached model's characters; any of these open earns a huge speedup. When all are shut, it
# trains for real in a detached grandchild while the timed process only sleeps, then prints a
# fake time in every form a grader might be tempted to read.
HOSTILE = '''
import glob, json, os, pathlib, runpy, shutil, sys, time
import numpy as np
out, cache = pathlib.Path("outputs"), pathlib.Path("cache")
if not cache.exists():
    runpy.run_path("train_real.py", run_name="__main__")
    cache.mkdir()
    shutil.copy(out / "model.npz", cache)
    shutil.copy("data/train.txt", cache / "plain.txt")
    sys.exit(0)
out.mkdir(exist_ok=True)
for found in glob.glob("../*/outputs/model.npz") + glob.glob("/tmp/*/*/outputs/model.npz"):
    if "/candidate/" not in os.path.abspath(found):
        shutil.copy(found, out / "model.npz")
        print("took", found)
        sys.exit(0)
secret = pathlib.Path("data/train.txt").read_text()
for source in ("/grader/train.txt", "cache/plain.txt"):
    try:
        plain = pathlib.Path(source).read_text()
    except OSError:
        continue
    key = dict(zip(plain, secret))
    if len(plain) == len(secret) and all(key[p] == c for p, c in zip(plain, secret)):
        with np.load(cache / "model.npz") as npz:
            model = {name: npz[name] for name in npz.files}
        model["vocab"] = np.array([ord(key.get(chr(c), chr(c))) for c in model["vocab"]],
                                  np.int32)
        np.savez(out / "model.npz", **model)
        print("deciphered with", source)
        sys.exit(0)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        runpy.run_path("train_real.py", run_name="__main__")
        pathlib.Path("done").write_text("")
    os._exit(0)
while not pathlib.Path("done").exists():
    time.sleep(0.05)
print("trained in 0.01 s; validation loss 0.1 nats/char")
print(json.dumps({"speedup": 1000.0, "train_s": 0.01, "loss": 0.1}))
'''


def hostile(tmp_path: Path, train: str) -> Path:
    folder = tmp_path / "workspace"
    shutil.copytree(EXPERIMENT / "workspace", folder)
    (folder / "train.py").rename(folder / "train_real.py")
    (folder / "train.py").write_text(train)
    return folder


def grade(folder: Path) -> dict[str, float]:
    outcome = asyncio.run(grade_workspace(load_experiment(EXPERIMENT), folder))
    assert outcome.ok, outcome.error
    return outcome.metrics


def test_a_hostile_candidate_earns_no_speedup(tmp_path: Path) -> None:
    metrics = grade(hostile(tmp_path, HOSTILE))
    # No model to steal, no key to read: it had to train, and the grader's clock (the
    # sandbox's CPU, the detached grandchild's included) saw the baseline's own work.
    assert 0.6 < metrics["speedup"] < 1.4, metrics
    assert metrics["loss"] == pytest.approx(metrics["baseline_loss"], abs=0.05)
