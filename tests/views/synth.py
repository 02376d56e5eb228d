"""Runs made for the viewer's tests and benchmark, written through the log's real line format.

    journal_run(run_dir, iterations=3)          through the real Journal (validated, fsynced)
    fast_run(run_dir, iterations=800)           the same records sealed directly (benchmark
                                                sizes: 100k events in seconds, same bytes)

Each iteration: the manager's model and tool call, a plan of `width` engineers, and for each
a transcript of `calls` model/tool call pairs (the tool result recorded), two sandbox commands,
a result and a grade; a critic reviews the leader and refutes every third one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from labcoat.log import FileOps, Journal
from labcoat.log.lines import seal

EXPERIMENT = {"name": "synth", "metric": {"name": "acc", "direction": "maximize"}}
BASE = "0" * 40
Record = dict[str, Any]


def _commit(k: int) -> str:
    return f"{k + 1:040x}"


def records(iterations: int, *, width: int = 3, calls: int = 3, text: str = "thinking",
            finish: bool = True) -> Iterator[Record]:
    """Records (type + fields, `iteration` included) of a whole synthetic run."""
    yield {"type": "run_started", "iteration": 0,
           "config": {"goal": "Raise acc.", "max_iterations": iterations, "budget_usd": 50.0},
           "experiment": EXPERIMENT, "experiment_dir": "experiments/synth",
           "experiment_hash": "e" * 64, "grader_hash": "g" * 64, "labcoat_version": "0.1.0",
           "seed": 0, "brain": "openai:synth", "base_commit": BASE}
    best, k = (None, BASE), 0
    for it in range(1, iterations + 1):
        sids = [f"it{it:03d}-{j:02d}" for j in range(1, width + 1)]
        yield from _manager(it, sids, best[1])
        for sid in sids:
            k += 1
            metric = round(0.5 + 0.4 * ((k * 7919) % 1000) / 1000, 4)
            yield from subtask(it, sid, best[1], _commit(k), metric, calls=calls, text=text)
            if best[0] is None or metric > best[0]:
                best = (metric, _commit(k))
        yield from _critic(it, sids[0], _commit(k - width + 1), refute=it % 3 == 0)
        yield {"type": "iteration_closed", "iteration": it, "improved": True}
    if finish:
        yield {"type": "run_finished", "iteration": iterations, "reason": "max iterations"}


def _manager(it: int, sids: list[str], base: str) -> Iterator[Record]:
    args = json.dumps({"subtasks": [{"role": "engineer", "instructions": "tune"}] * len(sids)})
    yield _llm(it, None, "manager", "propose_plan", args, "I will try a few values.")
    yield {"type": "tool_call", "iteration": it, "tool": "propose_plan", "call_id": "c",
           "arguments": args, "result": "planned", "duration_s": 0.01}
    yield {"type": "plan_proposed", "iteration": it, "rationale": f"iteration {it}: tune",
           "subtasks": [{"id": s, "iteration": it, "role": "engineer",
                         "instructions": f"Tune the learning rate ({s}).", "base_commit": base,
                         "params": {"lr": 0.1 * j}, "seed": 0} for j, s in enumerate(sids, 1)]}


def _llm(it: int, sid: str | None, role: str, tool: str, args: str, text: str) -> Record:
    message = {"role": "assistant", "content": text, "tool_calls": [
        {"id": "c", "name": tool, "arguments": json.loads(args), "raw_arguments": args}]}
    return {"type": "llm_call", "iteration": it, "role": role, "subtask_id": sid,
            "model": "synth-1", "request_hash": f"sha256:{uuid.uuid4().hex}",
            "response": {"message": message, "stop_reason": "tool_use", "usage": {}},
            "usage": {"input_tokens": 900, "output_tokens": 120}, "cost_usd": 0.002,
            "duration_s": 1.2}


def subtask(it: int, sid: str, base: str, commit: str, metric: float, *, calls: int = 3,
            text: str = "thinking") -> Iterator[Record]:
    """One engineer subtask: started, `calls` model+tool pairs, commands, finished, graded."""
    yield {"type": "subtask_started", "iteration": it, "subtask_id": sid, "role": "engineer",
           "attempt": 1, "base_commit": base}
    for n in range(calls):
        args = json.dumps({"command": f"python train.py --step {n}"})
        yield _llm(it, sid, "engineer", "bash", args, f"{text} {n}")
        yield {"type": "tool_call", "iteration": it, "subtask_id": sid, "tool": "bash",
               "call_id": "c", "arguments": args, "result": f"exit code: 0\nloss {n}",
               "duration_s": 0.3}
    yield {"type": "subtask_finished", "iteration": it, "subtask_id": sid, "role": "engineer",
           "tree": "f" * 40, "summary": f"lr tuned in {sid}", "changed": True}
    for step in ("run", "evaluate"):
        yield {"type": "sandbox_exec", "iteration": it, "subtask_id": sid,
               "cmd": f"[{step}] python3 {step}.py", "returncode": 0, "duration_s": 0.4,
               "stdout_tail": f"{step} ok\n"}
    yield {"type": "graded", "iteration": it, "subtask_id": sid, "commit": commit, "seed": 0,
           "metrics": {"acc": metric}, "metric": metric, "duration_s": 0.8}


def _critic(it: int, target: str, commit: str, *, refute: bool) -> Iterator[Record]:
    sid = f"it{it:03d}-r01"
    yield {"type": "plan_proposed", "iteration": it, "rationale": f"review {target}",
           "subtasks": [{"id": sid, "iteration": it, "role": "critic", "target": target,
                         "instructions": f"Review {target}.", "base_commit": commit,
                         "seed": 0}]}
    yield {"type": "subtask_started", "iteration": it, "subtask_id": sid, "role": "critic",
           "attempt": 1, "base_commit": commit}
    verdict = "not_reproducible" if refute else "reproducible"
    for seed in (1, 2):
        yield {"type": "graded", "iteration": it, "subtask_id": target, "commit": commit,
               "seed": seed, "metrics": {"acc": 0.5}, "metric": 0.5, "duration_s": 0.8}
    yield {"type": "critique", "iteration": it, "subtask_id": sid, "target": target,
           "verdict": verdict, "reason": "re-graded with seeds 1 and 2",
           "metrics_by_seed": {"0": 0.6, "1": 0.5, "2": 0.5}, "mean": 0.53, "std": 0.05}
    yield {"type": "subtask_finished", "iteration": it, "subtask_id": sid, "role": "critic",
           "summary": f"{verdict}: re-graded"}


class NoSync(FileOps):
    """Appends without fsync: a test's run need not survive a power cut."""

    def fsync(self, fd: int) -> None:
        pass


def journal_run(run_dir: Path, iterations: int = 3, **kw: Any) -> Path:
    """A run written through the real Journal (each record validated by the writer)."""
    with Journal.open(run_dir, "synth-run", create=True, ops=NoSync()) as journal:
        append(journal, records(iterations, **kw))
    return run_dir


def append(journal: Journal, recs: Iterator[Record] | list[Record]) -> None:
    for rec in recs:
        rec = dict(rec)
        journal.append(rec.pop("type"), iteration=rec.pop("iteration"), **rec)


def fast_run(run_dir: Path, iterations: int, **kw: Any) -> Path:
    """The same run sealed directly in the line format (what the Journal writes, faster)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    prev = ""
    with open(run_dir / "log.jsonl", "wb") as f:
        for seq, rec in enumerate(records(iterations, **kw)):
            rec = dict(rec)
            record = {"v": 1, "seq": seq, "type": rec.pop("type"), "id": uuid.uuid4().hex,
                      "run_id": "synth-run", "iteration": rec.pop("iteration"),
                      "ts": 1.7e9 + seq, "parent": None, **rec}
            line, prev = seal(json.dumps(record, separators=(",", ":")).encode(), prev)
            f.write(line)
    return run_dir
