"""Real `labcoat` processes for the steering tests: stdin is never a terminal unless a test
gives it one, so a run asks nothing inline by accident."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import IO, Any

from labcoat.log import read_events
from tests.loop.conftest import LABCOAT


def cli(*args: str, timeout: float = 600, env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LABCOAT, *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})


class Live:
    """A labcoat process in the background, its output going to files."""

    def __init__(self, folder: Path, *args: str, stdin: int | IO[Any] = subprocess.DEVNULL,
                 env: dict[str, str] | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        n = len(list(folder.glob("out-*")))
        self.out, self.err = folder / f"out-{n}", folder / f"err-{n}"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen([LABCOAT, *args], stdout=out, stderr=err, stdin=stdin,
                                         env={**os.environ, **(env or {})})

    def run_dir(self, timeout: float = 60) -> Path:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.out.read_text().splitlines()
            if lines:
                return Path(lines[0])
            assert self.proc.poll() is None, self.err.read_text()
            time.sleep(0.05)
        raise AssertionError("labcoat printed no run directory")

    def wait_err(self, text: str, timeout: float = 120) -> None:
        """Until the process's stderr says `text`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.err.read_text(errors="replace"):
                return
            assert self.proc.poll() is None, self.err.read_text()
            time.sleep(0.05)
        raise AssertionError(f"stderr never said {text!r}: {self.err.read_text()}")

    def wait(self, timeout: float = 600) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def wait_for(run_dir: Path, kind: str, count: int = 1, timeout: float = 180) -> None:
    """Until the log holds `count` events of type `kind`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (run_dir / "log.jsonl").exists() and kinds(run_dir).count(kind) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} {kind} event(s) within {timeout} s")


def kinds(run_dir: Path) -> list[str]:
    return [e.type for e in read_events(run_dir)]
