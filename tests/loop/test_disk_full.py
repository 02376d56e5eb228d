"""A full disk mid-run: a clean stop with one message, a loadable log, and a resume that finishes
once there is space. The run directory lives on a real, small tmpfs in a private mount namespace
(root only). Where it fills varies with size and timing (git objects, refs, artifacts, a log
record); LABCOAT_DISK_FULL_SIZES=160k,180k,... sweeps more sizes. A whole run needs ~400k."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from labcoat.log import load_state
from tests.loop.conftest import LABCOAT, make_experiment

pytestmark = [pytest.mark.docker,
              pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None,
                                 reason="needs root and util-linux unshare for a private tmpfs")]

SIZES = [s for s in os.environ.get("LABCOAT_DISK_FULL_SIZES", "200k,250k,300k").split(",") if s]

# The free-disk floor would pause such a small disk before any work (exit 3, tested in
# test_disk_limits.py); here the writes themselves must fail, so the floor is off.
SCRIPT = """
export LABCOAT_MIN_FREE_DISK=0
mount -t tmpfs -o size={size} none {mnt} || exit 90
{labcoat} run {exp} --max-iterations 3 --parallel 2 --runs-dir {mnt} >{out}/run.out 2>{out}/run.err
echo $? >{out}/run.rc
mount -o remount,size=64m {mnt}
{labcoat} resume "$(head -n 1 {out}/run.out)" >{out}/resume.out 2>{out}/resume.err
echo $? >{out}/resume.rc
cp -a {mnt}/. {out}/runs/
"""


@pytest.mark.parametrize("size", SIZES)
def test_disk_full_stops_cleanly_and_resume_finishes(tmp_path: Path, size: str) -> None:
    exp = make_experiment(tmp_path / "toy")
    mnt, out = tmp_path / "mnt", tmp_path / "out"
    mnt.mkdir()
    out.mkdir()
    script = SCRIPT.format(size=size, mnt=mnt, out=out, labcoat=LABCOAT, exp=exp)
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                          timeout=600)
    if done.returncode == 90:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    err = (out / "run.err").read_text()
    assert (out / "run.rc").read_text().strip() == "1", err
    errors = [line for line in err.splitlines() if line.startswith("labcoat: error:")]
    assert len(errors) == 1 and "resume" in errors[0], err
    assert "Traceback" not in err
    assert (out / "resume.rc").read_text().strip() == "0", (out / "resume.err").read_text()
    run_dir = out / "runs" / Path((out / "run.out").read_text().splitlines()[0]).name
    state = load_state(run_dir)
    assert state.status == "finished" and state.best is not None
