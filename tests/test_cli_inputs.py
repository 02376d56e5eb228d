"""What the read-only verbs do with odd input: a folder that is not a run, a reader that leaves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from labcoat.log import Journal

LABCOAT = str(Path(sys.executable).with_name("labcoat"))


@pytest.mark.parametrize("verb", [["status"], ["status", "--json"], ["log"], ["log", "-f"],
                                  ["report"], ["resume"]])
def test_a_folder_that_is_not_a_run_is_bad_input_for_every_verb(tmp_path: Path,
                                                                 verb: list[str]) -> None:
    proc = subprocess.run([LABCOAT, verb[0], str(tmp_path), *verb[1:]], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (f"labcoat: error: {tmp_path} is not a run directory (no "
                                   "log.jsonl); fix: pass the folder `labcoat run` printed, "
                                   "e.g. runs/<run-id>")


@pytest.mark.slow
def test_a_reader_that_stops_early_gets_no_traceback(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "run", "r1", create=True) as journal:
        for i in range(2000):  # far more than a pipe holds
            journal.append("sandbox_exec", cmd=f"echo {i}", returncode=0, duration_s=0.0,
                           stdout_tail="x" * 100)
    for follow in ([], ["--follow"]):
        with subprocess.Popen([LABCOAT, "log", str(tmp_path / "run"), *follow],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
            assert proc.stdout is not None and proc.stderr is not None  # `... | head -1`
            assert proc.stdout.readline()
            proc.stdout.close()
            err = proc.stderr.read().decode()
            assert proc.wait(timeout=60) == 1, err
        assert err == "", err
