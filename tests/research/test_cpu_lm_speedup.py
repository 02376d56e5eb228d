"""experiments/cpu-lm-speedup: the grader times training itself, so what a candidate reports,
hides or smuggles in earns nothing. Each case is the bundled workspace with a hostile train.py,
graded once through the real pipeline (`run` in a sandbox without the grader, `evaluate` with
it). The search brain's real speedup (3 iterations, > 1.3) is benchmarks/research_quality.py's
to show: a run of it takes minutes."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from labcoat.experiment import load_experiment
from labcoat.orchestrator.init import grade_workspace

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

EXPERIMENT = Path(__file__).resolve().parents[2] / "experiments" / "cpu-lm-speedup"

# The baseline's own training, done by a detached grandchild while the timed process only
# sleeps, then a fake time in every form a grader might be tempted to read.
HIDDEN_WORK = '''
import json, os, pathlib, runpy, time
pathlib.Path("done").unlink(missing_ok=True)  # the `run` step's, copied to the timed run
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

# `run` trains and caches the model with a plain copy of its text. The timed run trains
# nothing: it takes the baseline's fresh model if it can reach it, else reads the cipher key by
# lining up the enciphered text with a plain one (the grader's own, then its cached copy) and
# renames the cached model's characters. Any of these open would earn a huge speedup.
THIEF = '''
import glob, pathlib, runpy, shutil, sys
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
    if not found.startswith("../candidate") and "/candidate/" not in found:
        shutil.copy(found, out / "model.npz")
        print("took", found)
        sys.exit(0)
secret = pathlib.Path("data/train.txt").read_text()
for plain_path in ("/grader/train.txt", "cache/plain.txt"):
    try:
        plain = pathlib.Path(plain_path).read_text()
    except OSError as err:
        print("cannot read", plain_path, err)
        continue
    key = {}
    for p, c in zip(plain, secret):
        key.setdefault(p, c)
    break
with np.load(cache / "model.npz") as npz:
    model = {name: npz[name] for name in npz.files}
model["vocab"] = np.array([ord(key.get(chr(c), chr(c))) for c in model["vocab"]], np.int32)
np.savez(out / "model.npz", **model)
print("trained in 0.00 s (cached)")
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


def test_work_hidden_in_the_background_and_a_fake_time_earn_nothing(tmp_path: Path) -> None:
    metrics = grade(hostile(tmp_path, HIDDEN_WORK))
    # The baseline's training, timed by the grader's clock (the sandbox's CPU, the detached
    # grandchild's included): no gain, whatever the timed process spent or printed.
    assert 0.6 < metrics["speedup"] < 1.4, metrics
    assert metrics["loss"] == pytest.approx(metrics["baseline_loss"], abs=0.05)


def test_a_cached_or_stolen_model_earns_nothing(tmp_path: Path) -> None:
    metrics = grade(hostile(tmp_path, THIEF))
    # Instant, but the baseline's model was gone, /grader unreadable, and the plain copy is of
    # other text: the cached model knows the wrong alphabet.
    assert metrics["raw_speedup"] > 5, metrics
    assert metrics["speedup"] == 0.0 and metrics["loss"] > metrics["target_loss"] + 1, metrics
