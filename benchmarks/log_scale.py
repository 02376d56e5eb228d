"""Experiment-log scale: append throughput under the fsync policy, load+fold time and memory,
and resuming a long run from a snapshot of the fold against replaying its whole log.

    .venv/bin/python benchmarks/log_scale.py [--sizes 10000,100000,1000000] [--dir DIR]
        [--resume-size 1000000] [--tail 5000] [--repeat 3]

Prints one JSON object. Each load is measured in a fresh process (wall time, peak RSS).
`load_state` streams (never holds all events); `journal_open` is what a resume does (verify,
fold), here with no snapshot. `resume`: the log of `--resume-size` records with a snapshot
`--tail` records before its end (half the default cadence: the average resume), opened by
`Journal.open` from the snapshot and, in the same run, by a full replay (snapshots set aside);
medians of `--repeat` fresh processes each, and their ratio. `append` also runs with snapshots
off and on (the default cadence) in the same run, for the cost of snapshotting on appends.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labcoat.log import Journal, SnapshotPolicy, read_state  # noqa: E402
from labcoat.log.lines import seal  # noqa: E402
from labcoat.log.snapshot import DIR_NAME  # noqa: E402

OFF = SnapshotPolicy(enabled=False)

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


CHATTY: dict[str, Any] = {"cmd": "python train.py", "returncode": 0, "duration_s": 1.0,
                          "stdout_tail": "x" * 200}


DENSE = SnapshotPolicy(every_events=1_000)
"""Ten times the default cadence, so that a few snapshots of the long state fall in `n`."""


def appends_on_long_run(path: Path, mode: str, n: int = 2_000) -> dict[str, Any]:
    """Resume the long run (from its snapshot) and append `n` chatty records, with snapshots
    off or every 1,000 records (each one of the whole long state, in the background)."""
    policy = DENSE if mode == "appends_snapshots_every_1000" else OFF
    with Journal.open(path.parent, snapshots=policy) as journal:
        began = time.perf_counter()
        for _ in range(n):
            journal.append("sandbox_exec", **CHATTY)
        journal.flush()
        seconds = time.perf_counter() - began
        closing = time.perf_counter()
    closed = time.perf_counter() - closing
    return {"events": n, "seconds": round(seconds, 3), "events_per_s": round(n / seconds),
            "close_s": round(closed, 3)}


def measure(path: Path, mode: str) -> dict[str, Any]:
    """One load in this process; `*_snapshot` modes must start from a snapshot."""
    if mode.startswith("appends"):
        return appends_on_long_run(path, mode)
    began, snapshot = time.perf_counter(), None
    if mode.startswith("load_state"):
        contents = read_state(path.parent)
        state, snapshot = contents.state, contents.snapshot
    else:  # a resume that writes no snapshot of its own: what is measured is the open
        with Journal.open(path.parent, snapshots=OFF) as journal:
            state, snapshot = journal.state, journal.snapshot
    seconds = time.perf_counter() - began
    assert (snapshot is not None) == mode.endswith("_snapshot"), (mode, snapshot)
    assert state.last_seq >= 0 and state.best is not None
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": round(seconds, 3), "peak_rss_mib": round(peak_kib / 1024, 1),
            "events_per_s": round((state.last_seq + 1) / seconds)}


def _measure_in_child(path: Path, mode: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--measure", str(path), mode],
                         capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def appends(where: Path, type_: str, n: int,
            policy: SnapshotPolicy | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = (
        CHATTY if type_ == "sandbox_exec" else
        {"subtask_id": "s", "commit": "c", "seed": 0, "metrics": {"acc": 0.5}, "metric": 0.5})
    run = where / f"{type_}-{uuid.uuid4().hex[:8]}"
    with Journal.open(run, "bench", create=True, snapshots=policy or OFF) as journal:
        began = time.perf_counter()
        for _ in range(n):
            journal.append(type_, **fields)
        journal.flush()
        seconds = time.perf_counter() - began
    return {"events": n, "seconds": round(seconds, 3), "events_per_s": round(n / seconds),
            "fsync_each": type_ != "sandbox_exec"}


def _median_of(path: Path, mode: str, repeat: int) -> dict[str, Any]:
    runs = [_measure_in_child(path, mode) for _ in range(repeat)]
    _progress(mode, runs)
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def _progress(what: str, value: object) -> None:
    """Each figure on stderr as it is measured (a long run loses nothing when stopped)."""
    print(what, json.dumps(value), file=sys.stderr, flush=True)


def _snapshot_of_prefix(where: Path, log: Path, keep_lines: int) -> dict[str, Any]:
    """Snapshot the first `keep_lines` records of `log` as a resume does (a first resume of a
    long log writes one at once) and put it next to `log`."""
    prefix = where / "prefix"
    prefix.mkdir()
    with open(log, "rb") as src, open(prefix / "log.jsonl", "wb") as dst:
        for _, line in zip(range(keep_lines), src, strict=False):
            dst.write(line)
    began = time.perf_counter()
    with Journal.open(prefix, snapshots=SnapshotPolicy(at_close=1)):
        pass
    seconds = time.perf_counter() - began
    shutil.move(prefix / DIR_NAME, log.parent / DIR_NAME)
    shutil.rmtree(prefix)
    (snapshot,) = (log.parent / DIR_NAME).iterdir()
    return {"name": snapshot.name, "mib": round(snapshot.stat().st_size / 2**20, 1),
            "first_resume_s (full replay + writing it)": round(seconds, 3)}


def resume_row(where: Path, n: int, tail: int, repeat: int) -> dict[str, Any]:
    """Resume `n` records from a snapshot `tail` records before the end vs a full replay."""
    run = where / f"resume{n}"
    run.mkdir()
    log = run / "log.jsonl"
    write_log(log, n)
    row: dict[str, Any] = {"events": n, "tail": tail, "repeat": repeat,
                           "file_mib": round(log.stat().st_size / 2**20, 1),
                           "snapshot": _snapshot_of_prefix(where, log, n - tail)}
    _progress("snapshot", row["snapshot"])
    row["from_snapshot"] = _median_of(log, "journal_open_snapshot", repeat)
    row["load_state_from_snapshot"] = _median_of(log, "load_state_snapshot", repeat)
    (run / DIR_NAME).rename(run / "set-aside")
    row["full_replay"] = _median_of(log, "journal_open", repeat)
    (run / "set-aside").rename(run / DIR_NAME)
    for mode in ("appends_snapshots_off", "appends_snapshots_every_1000"):  # they grow the log
        row[mode] = _median_of(log, mode, repeat)
        _progress(mode, row[mode])
    full, fast = row["full_replay"], row["from_snapshot"]
    row["ratio"] = {"seconds (full / snapshot)": round(full["seconds"] / fast["seconds"], 1),
                    "peak_rss (full / snapshot)": round(full["peak_rss_mib"]
                                                        / fast["peak_rss_mib"], 1)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--dir", default=None, help="Where to write (default: system temp).")
    parser.add_argument("--resume-size", type=int, default=1_000_000,
                        help="Records of the resume row's log (0: no resume row).")
    parser.add_argument("--tail", type=int, default=5_000,
                        help="Records after the resume row's snapshot.")
    parser.add_argument("--repeat", type=int, default=3, help="Processes per resume median.")
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
                                                                 20000),
            "chatty, snapshots at the default cadence": appends(
                where, "sandbox_exec", 20000, SnapshotPolicy())}, "load": {}}
        for n in (int(s) for s in args.sizes.split(",") if s):
            run = where / f"run{n}"
            run.mkdir()
            write_log(run / "log.jsonl", n)
            result["load"][str(n)] = {
                "file_mib": round((run / "log.jsonl").stat().st_size / 2**20, 1),
                "load_state (stream+fold)": _measure_in_child(run / "log.jsonl", "load_state"),
                "Journal.open (resume, no snapshot: verify+fold)": _measure_in_child(
                    run / "log.jsonl", "journal_open"),
            }
        if args.resume_size:
            result["resume"] = resume_row(where, args.resume_size, args.tail, args.repeat)
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
