"""Experiment-log scale: append throughput under the fsync policy, load+fold time and memory.

    .venv/bin/python benchmarks/log_scale.py [--sizes 10000,100000,1000000] [--dir DIR]

Prints one JSON object. Each load is measured in a fresh process (wall time, peak RSS).
`load_state` streams (never holds all events); `journal_open` is what a resume does
(verify, keep every event, fold).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labcoat.log import Journal, load_state  # noqa: E402
from labcoat.log.lines import seal  # noqa: E402

EXPERIMENT = {"name": "bench", "metric": {"name": "acc", "direction": "maximize"}}


def _subtask_records(sid: str, it: int, k: int) -> list[dict[str, Any]]:
    """One subtask's events: start, 3 model calls, 4 commands, finish, grade (10 records)."""
    recs: list[dict[str, Any]] = [{"type": "subtask_started", "subtask_id": sid,
                                   "role": "engineer", "attempt": 1, "base_commit": "c0"}]
    for n in range(3):
        recs.append({"type": "llm_call", "role": "engineer", "subtask_id": sid, "model": "m",
                     "request_hash": f"{sid}-{n}", "response": {"text": "ok " * 40},
                     "usage": {"input_tokens": 900, "output_tokens": 120},
                     "cost_usd": 0.002, "duration_s": 1.5, "replayed": False})
    for n in range(4):
        recs.append({"type": "sandbox_exec", "subtask_id": sid, "cmd": f"python train.py {n}",
                     "returncode": 0, "duration_s": 3.0, "timed_out": False,
                     "oom_killed": False, "stdout_tail": "epoch 1 loss 0.3\n" * 6,
                     "stderr_tail": ""})
    metric = (k * 7919 % 1000) / 1000
    recs.append({"type": "subtask_finished", "subtask_id": sid, "role": "engineer",
                 "attempt": 1, "commit": f"{k:040x}", "summary": "tuned lr", "changed": True,
                 "artifacts": [], "critique": None})
    recs.append({"type": "graded", "subtask_id": sid, "commit": f"{k:040x}", "seed": 0,
                 "metrics": {"acc": metric}, "metric": metric, "ok": True, "error": None,
                 "duration_s": 2.0})
    return recs


def _records(n: int) -> Any:
    yield {"type": "run_started", "config": {}, "experiment": EXPERIMENT,
           "experiment_dir": "x", "experiment_hash": "e", "grader_hash": "g",
           "labcoat_version": "0.1.0", "seed": 0, "brain": "search", "base_commit": "c0"}
    count, k, it = 1, 0, 0
    while count < n:
        it += 1
        sids = [f"it{it:05d}-{j:02d}" for j in range(5)]
        batch = [{"type": "plan_proposed", "_it": it, "rationale": "more",
                  "subtasks": [{"id": s, "iteration": it, "role": "engineer",
                                "instructions": "x", "base_commit": "c0", "seed": 0}
                               for s in sids]}]
        for s in sids:
            k += 1
            batch += [{**r, "_it": it} for r in _subtask_records(s, it, k)]
        yield from batch[:n - count]
        count += len(batch)


def write_log(path: Path, n: int) -> None:
    """A valid n-event log written directly in the line format (fast, same bytes)."""
    prev, seq = "", 0
    with open(path, "wb") as f:
        for rec in _records(n):
            it = rec.pop("_it", 0)
            record = {"v": 1, "seq": seq, "type": rec.pop("type"), "id": uuid.uuid4().hex,
                      "run_id": "bench", "iteration": it, "ts": 1.7e9 + seq, "parent": None,
                      **rec}
            line, prev = seal(json.dumps(record, separators=(",", ":")).encode(), prev)
            f.write(line)
            seq += 1


def measure(path: Path, mode: str) -> dict[str, Any]:
    began = time.perf_counter()
    if mode == "load_state":
        state = load_state(path)
    else:
        with Journal.open(path.parent) as journal:
            state = journal.state
    seconds = time.perf_counter() - began
    assert state.last_seq >= 0 and state.best is not None
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": round(seconds, 3), "peak_rss_mib": round(peak_kib / 1024, 1),
            "events_per_s": round((state.last_seq + 1) / seconds)}


def _measure_in_child(path: Path, mode: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--measure", str(path), mode],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def appends(where: Path, type_: str, n: int) -> dict[str, Any]:
    fields: dict[str, Any] = (
        {"cmd": "python train.py", "returncode": 0, "duration_s": 1.0, "stdout_tail": "x" * 200}
        if type_ == "sandbox_exec" else
        {"subtask_id": "s", "commit": "c", "seed": 0, "metrics": {"acc": 0.5}, "metric": 0.5})
    with Journal.open(where / type_, "bench", create=True) as journal:
        began = time.perf_counter()
        for _ in range(n):
            journal.append(type_, **fields)
        journal.flush()
        seconds = time.perf_counter() - began
    return {"events": n, "seconds": round(seconds, 3), "events_per_s": round(n / seconds),
            "fsync_each": type_ != "sandbox_exec"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--dir", default=None, help="Where to write (default: system temp).")
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), args.measure[1])))
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        where = Path(tmp)
        result: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count(),
                                  "dir": str(where), "append": {
            "committing (graded, fsync before return)": appends(where, "graded", 2000),
            "chatty (sandbox_exec, fsync batched <= 1 s)": appends(where, "sandbox_exec",
                                                                 20000)}, "load": {}}
        for n in (int(s) for s in args.sizes.split(",")):
            run = where / f"run{n}"
            run.mkdir()
            write_log(run / "log.jsonl", n)
            result["load"][str(n)] = {
                "file_mib": round((run / "log.jsonl").stat().st_size / 2**20, 1),
                "load_state (stream+fold)": _measure_in_child(run / "log.jsonl", "load_state"),
                "Journal.open (verify+keep events+fold)": _measure_in_child(
                    run / "log.jsonl", "journal_open"),
            }
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
