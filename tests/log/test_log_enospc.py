"""Disk full: a clean stop, a loadable log, and appends again once space is back."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labcoat.errors import RunLogWriteError
from labcoat.log import FileOps, Journal, read_events, read_log

from .helpers import start

ROOT = Path(__file__).resolve().parents[2]


class DiskFull(FileOps):
    """Accepts `room` more bytes, writes what fits (a short write), then ENOSPC."""

    def __init__(self, room: int) -> None:
        self.room = room

    def write(self, fd: int, data: bytes) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = super().write(fd, data[:self.room])
        self.room -= written
        return written


@pytest.mark.parametrize("room", [0, 1, 150, 2000])
def test_enospc_stops_cleanly_and_resumes(tmp_path: Path, room: int) -> None:
    with Journal.open(tmp_path / "run", "r1", create=True) as journal:
        start(journal)
        good = len(journal.events)
    journal = Journal.open(tmp_path / "run", ops=DiskFull(room))
    with pytest.raises(RunLogWriteError, match=r"(No space left on device|short write).*"
                                               r"labcoat resume"):
        for i in range(100):
            journal.append("sandbox_exec", cmd=f"step {i}", returncode=0, duration_s=0.0)
    with pytest.raises(RunLogWriteError, match="appends stopped"):
        journal.append("run_paused", reason="never written")
    journal.close()
    written = len(read_events(tmp_path / "run"))  # loadable; a short write is a torn tail
    assert written >= good
    with Journal.open(tmp_path / "run") as journal:  # space is back
        torn = read_log(tmp_path / "run").torn
        assert torn is None
        journal.append("run_resumed", pid=os.getpid())
        journal.append("run_finished", reason="done")
    events = read_events(tmp_path / "run")
    assert events[-1].type == "run_finished"
    repaired = [e for e in events if e.type == "log_repaired"]
    assert len(repaired) == (1 if room else 0)  # a short write left a torn tail, set aside


TMPFS_CHILD = """
import sys
from pathlib import Path
from labcoat.errors import RunLogWriteError
from labcoat.log import Journal
run = Path(sys.argv[1])
with Journal.open(run, "tmpfs-run", create=not (run / "log.jsonl").exists()) as j:
    try:
        for i in range(100000):
            j.append("llm_call", role="engineer", model="m", request_hash=str(i),
                     response={"pad": "x" * 900}, cost_usd=0.001)
    except RunLogWriteError as err:
        print("STOPPED", len(j.events), err, flush=True)
        sys.exit(3)
"""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
@pytest.mark.slow
def test_real_full_tmpfs(tmp_path: Path) -> None:
    """A real 64 KiB tmpfs (in a private mount namespace) fills up; then it grows."""
    mnt, out = tmp_path / "mnt", tmp_path / "out"
    mnt.mkdir()
    py = f"{sys.executable} -c '{TMPFS_CHILD}'"
    script = (f"mount -t tmpfs -o size=64k none {mnt} && {py} {mnt}/run; echo rc=$?; "
              f"mount -o remount,size=4m {mnt} && {py} {mnt}/run; echo rc=$?; "
              f"cp -a {mnt}/run {out}")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a mount namespace here: {probe.stderr.decode().strip()}")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.count("rc=3") == 2, done.stdout + done.stderr
    assert "No space left on device" in done.stdout or "short write" in done.stdout
    first, second = (int(line.split()[1]) for line in done.stdout.splitlines()
                     if line.startswith("STOPPED"))
    assert 40 < first < second  # it stopped when full, then wrote more once space was back
    assert len(read_events(out)) == second
