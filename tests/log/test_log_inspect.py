"""`labcoat status` / `labcoat log` on fixture run dirs, through the real CLI process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labcoat.log import Journal

from .helpers import start

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "logs" / "v1" / "complete"


def labcoat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labcoat.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_status_text() -> None:
    out = labcoat("status", str(FIXTURE))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "run-v1  finished (budget exhausted (usd))" in text
    assert "baseline 0.8  best 0.85 (it001-02 @ b2b2b2b2b2)" in text
    assert "+ 1 calls of unknown price" in text and "usd exhausted" in text
    row = next(line for line in text.splitlines() if line.startswith("it002-01"))
    assert row.split()[:6] == ["it002-01", "engineer", "finished", "1", "0.93", "(+2"]
    assert "not_reproducible" in row


def test_status_json() -> None:
    out = labcoat("status", str(FIXTURE), "--json")
    data = json.loads(out.stdout)
    assert data["status"] == "finished" and data["iteration"] == 2
    assert data["best"] == {"subtask": "it001-02", "commit": "b2b2b2b2b2", "metric": 0.85}
    assert data["subtasks"]["it002-02"]["status"] == "failed"
    assert data["cost"]["total"]["unknown_cost_calls"] == 1 and data["torn_tail"] is None


@pytest.mark.slow
def test_status_reports_torn_tail_without_repairing(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "run")
    log = tmp_path / "run" / "log.jsonl"
    log.write_bytes(log.read_bytes() + b'{"v":1,"se')
    out = labcoat("status", str(tmp_path / "run"), "--json")
    assert json.loads(out.stdout)["torn_tail"]["line"] == 32
    assert log.read_bytes().endswith(b'{"v":1,"se')
    assert "sets it aside" in labcoat("status", str(tmp_path / "run")).stdout


def test_corrupt_log_is_one_clear_error(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "run")
    log = tmp_path / "run" / "log.jsonl"
    log.write_bytes(log.read_bytes().replace(b'"accuracy":0.85', b'"accuracy":0.95', 1))
    out = labcoat("log", str(tmp_path / "run"))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "log.jsonl line 12: checksum mismatch" in out.stderr and "head -n 11" in out.stderr


def test_timeline() -> None:
    out = labcoat("log", str(FIXTURE))
    lines = out.stdout.splitlines()
    assert len(lines) == 31
    assert "plan_proposed" in lines[1] and "2 subtasks: it001-01 reproducer" in lines[1]
    assert "critique" in lines[27] and "it002-03 on it002-01: not_reproducible" in lines[27]
    assert lines[-1].split()[1:4] == ["#30", "it2", "run_finished"]


@pytest.mark.slow
def test_follow_prints_until_the_run_ends(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "run", "live", create=True)
    start(journal)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen([sys.executable, "-m", "labcoat.cli", "log", "--follow",
                           str(tmp_path / "run")], stdout=subprocess.PIPE, text=True,
                          cwd=ROOT, env=env) as proc:
        assert proc.stdout is not None
        assert "run_started" in proc.stdout.readline()
        journal.append("sandbox_exec", cmd="echo live", returncode=0, duration_s=0.1)
        assert "echo live" in proc.stdout.readline()  # chatty records show before fsync
        time.sleep(0.3)
        journal.append("run_finished", reason="done")
        assert "run_finished" in proc.stdout.readline()
        assert proc.wait(timeout=10) == 0
    journal.close()
