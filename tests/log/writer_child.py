"""Writer processes for the crash tests, forked from one server so Python starts once per lane.

    python writer_child.py

The server imports labcoat, prints `up`, then for each `RUN_DIR SEED` line read on stdin forks
a writer and waits for it to die. The writer prints `pid <pid>`, opens the journal, prints
`open`, then appends forever, printing `<seq> <id>` after every `append` has returned. The
parent kills the writer with SIGKILL; the server then prints `exit <status>`, after everything
the writer printed (all lines go to the same pipe, each in one `os.write`: a pipe never splits
a write that small, so a line is there whole or not at all).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path

from labcoat.log import Journal


def say(*words: object, fd: int = 1) -> None:
    os.write(fd, (" ".join(map(str, words)) + "\n").encode())


def write_forever(run_dir: Path, seed: int, *, limit: int | None = None, out: int = 1) -> None:
    rng = random.Random(seed)
    create = not (run_dir / "log.jsonl").exists()
    with Journal.open(run_dir, "crash-run", create=create) as journal:
        say("open", fd=out)
        n = 0
        while limit is None or n < limit:
            n += 1
            if rng.random() < 0.5:
                event = journal.append("sandbox_exec", subtask_id="s", cmd=f"step {n}",
                                       returncode=0, duration_s=0.01,
                                       stdout_tail="é✓" * rng.randint(0, 300))
            else:
                event = journal.append("llm_call", role="engineer", model="m",
                                       request_hash=f"{seed}-{n}", response={"n": n},
                                       usage={"input_tokens": n}, cost_usd=None)
            say(event.seq, event.id, fd=out)


def warm_up() -> None:
    """Write, reopen and read a throwaway log once, so the forked writers inherit built models
    (pydantic builds them on first use) and measure the journal, not start-up."""
    sink = os.open(os.devnull, os.O_WRONLY)
    try:
        with tempfile.TemporaryDirectory() as where:
            for seed in (0, 1):
                write_forever(Path(where), seed, limit=4, out=sink)
    finally:
        os.close(sink)


def serve() -> None:
    warm_up()
    say("up")
    for line in sys.stdin:
        run_dir, seed = line.split()
        pid = os.fork()
        if pid == 0:
            try:
                say("pid", os.getpid())
                write_forever(Path(run_dir), int(seed))
            except BaseException as err:  # reported to the parent; the writer is gone anyway
                say("error", repr(err))
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        say("exit", status)


if __name__ == "__main__":
    serve()
