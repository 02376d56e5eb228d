"""One writer per run: a second process gets RunLocked at once; kill -9 frees the lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labcoat.errors import RunLocked
from labcoat.log import Journal, read_events

from .helpers import start

ROOT = Path(__file__).resolve().parents[2]
HOLDER = """
import sys, time
from labcoat.log import Journal
j = Journal.open(sys.argv[1])
print("locked", flush=True)
time.sleep(60)
"""


def test_second_writer_is_refused_at_once(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "run", "r1", create=True) as journal:
        start(journal)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "run")],
                          stdout=subprocess.PIPE, text=True, env=env) as holder:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        began = time.monotonic()
        with pytest.raises(RunLocked, match=rf"run locked by pid {holder.pid}: .*kill "
                                            rf"{holder.pid}"):
            Journal.open(tmp_path / "run")
        assert time.monotonic() - began < 0.5
        out = subprocess.run([sys.executable, "-c", HOLDER, str(tmp_path / "run")],
                             capture_output=True, text=True, env=env, timeout=30)
        assert out.returncode != 0 and f"run locked by pid {holder.pid}" in out.stderr
        assert read_events(tmp_path / "run")  # readers need no lock
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with Journal.open(tmp_path / "run") as journal:  # the dead holder's lock is gone
        journal.append("run_paused", reason="after the holder died")


def test_same_process_second_open_is_refused(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "run", "r1", create=True), \
            pytest.raises(RunLocked, match=f"pid {os.getpid()}"):
        Journal.open(tmp_path / "run", "r1")
