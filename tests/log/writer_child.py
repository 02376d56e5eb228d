"""A writer process for the crash tests: appends forever, acknowledging each record.

    python writer_child.py RUN_DIR SEED

Prints `ready` once the journal is open, then `<seq> <id>` on stdout after every
`append` has returned. The parent kills it with SIGKILL at a random point.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from labcoat.log import Journal


def main(run_dir: Path, seed: int) -> None:
    rng = random.Random(seed)
    create = not (run_dir / "log.jsonl").exists()
    with Journal.open(run_dir, "crash-run", create=create) as journal:
        print("ready", flush=True)
        n = 0
        while True:
            n += 1
            if rng.random() < 0.5:
                event = journal.append("sandbox_exec", subtask_id="s", cmd=f"step {n}",
                                       returncode=0, duration_s=0.01,
                                       stdout_tail="é✓" * rng.randint(0, 300))
            else:
                event = journal.append("llm_call", role="engineer", model="m",
                                       request_hash=f"{seed}-{n}", response={"n": n},
                                       usage={"input_tokens": n}, cost_usd=None)
            print(event.seq, event.id, flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
