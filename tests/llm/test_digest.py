"""The manager's digest stays bounded however long the run; the plan tool refuses bad plans."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from labcoat.agents.llm.digest import digest
from labcoat.agents.llm.manager import LlmManager, bases_of, plan_args
from labcoat.experiment import load_experiment
from labcoat.log.state import Grade, RunState, SubtaskState
from tests.loop.conftest import make_experiment

BASE = "b" * 40


def long_run(n: int) -> RunState:
    """A state with a reproducer and `n` engineer results: every 7th failed; every 11th refuted
    by a critic (not reproducible), every 13th confirmed (reproducible)."""
    subs = {"it001-01": finished("it001-01", "reproducer", 0.5)}
    for i in range(n):
        it, slot = 2 + i // 4, i % 4 + 1
        sid = f"it{it:03d}-{slot:02d}"
        if i % 7 == 3:
            subs[sid] = SubtaskState(id=sid, role="engineer", iteration=it,
                                     subtask=subtask(sid), status="failed",
                                     error="Traceback ... ZeroDivisionError " * 20)
            continue
        verdict = "not_reproducible" if i % 11 == 0 else "reproducible" if i % 13 == 0 else None
        subs[sid] = finished(sid, "engineer", 0.4 + (i % 13) / 50, verdict=verdict)
        if verdict:  # the critic's own subtask, which holds its critique
            cid = f"it{it:03d}-r{slot:02d}"
            subs[cid] = SubtaskState(
                id=cid, role="critic", iteration=it, subtask=subtask(cid), status="finished",
                critique={"target": sid, "verdict": verdict, "reason": "seeds 1, 2: " + verdict})
    return RunState(status="running", config={"goal": "Maximise score. " * 100, "parallel": 2},
                    experiment={"metric": {"name": "score", "direction": "maximize"}},
                    base_commit=BASE, iteration=2 + n // 4, subtasks=subs)


def subtask(sid: str) -> dict:
    return {"id": sid, "instructions": f"Try idea {sid}: " + "tune the learning rate " * 30,
            "base_commit": BASE, "seed": 0}


def finished(sid: str, role: str, metric: float, verdict: str | None = None) -> SubtaskState:
    commit = sid.encode().hex().ljust(40, "0")[:40]
    return SubtaskState(id=sid, role=role, iteration=int(sid[2:5]), subtask=subtask(sid),
                        status="finished", commit=commit, changed=role != "reproducer",
                        summary="changed things " * 40, verdict=verdict,
                        grades={0: Grade(commit, 0, metric, {"score": metric}, True, None)})


@pytest.mark.parametrize("n", [3, 40, 800])
def test_digest_stays_within_its_token_budget(n: int) -> None:
    calls: list[tuple[str, str]] = []

    def diff(a: str, b: str) -> str:
        calls.append((a, b))
        return "train.py | 2 +- :: -lr = 0.1 / +lr = 0.01"

    state = long_run(n)
    text = digest(state, diff=diff, max_tokens=800)
    assert len(text) <= 800 * 4
    assert "Baseline (unmodified code): 0.5" in text and "Best so far: " in text
    assert len(calls) <= 8, "only the latest results get their diff summarised"
    newest = [sid for sid, s in state.subtasks.items() if s.role != "critic"][-1]
    assert newest in text
    if n == 800:
        assert "more not shown" in text


def section(text: str, title: str) -> str:
    """The lines of one section of the digest (empty when it is not there)."""
    if title not in text:
        return ""
    return text.split(title, 1)[1].split("\n\n", 1)[0]


def test_digest_shows_doubted_results_and_failed_ideas_when_there_is_room() -> None:
    state = long_run(40)
    text = digest(state, max_tokens=20_000)
    critiques = section(text, "Open critiques:")
    refuted = [s.id for s in state.subtasks.values() if s.verdict == "not_reproducible"]
    confirmed = [s.id for s in state.subtasks.values() if s.verdict == "reproducible"]
    critic_of = {s.critique["target"]: s.id for s in state.subtasks.values() if s.critique}
    assert len(refuted) == 4 and confirmed
    for sid in refuted:  # the critic's own words, and which critic said so
        assert (f"- {sid}: not_reproducible ({critic_of[sid]}): seeds 1, 2: not_reproducible"
                in critiques), sid
    assert not any(f"- {sid}:" in critiques for sid in confirmed)  # no doubt, not open
    ideas = section(text, "Ideas that failed or did not beat the baseline:")
    older = [s for s in state.subtasks.values() if s.role == "engineer"][::-1][8:]
    failed = [s.id for s in older if s.status == "failed"]
    refuted_older = [s.id for s in older if s.verdict == "not_reproducible"]
    worse = [s.id for s in older if s.metric is not None and s.metric <= 0.5]  # baseline 0.5
    assert failed and refuted_older and worse
    for sid in failed + refuted_older + worse:
        assert f"- {sid} engineer:" in ideas, sid


def test_manager_prompt_is_bounded_for_a_long_run(tmp_path: Path) -> None:
    exp = load_experiment(make_experiment(tmp_path / "toy"))
    manager = LlmManager(exp, ["reproducer", "engineer", "critic"], models=None, journal=None,
                         descriptions={"engineer": "edits code", "reproducer": "reruns"},
                         max_subtasks=2, digest_tokens=1000)
    short = manager.system_prompt(_unchanged(long_run(2)))
    long = manager.system_prompt(_unchanged(long_run(2000)))
    assert len(long) <= len(short) + 1000 * 4
    assert "engineer: edits code" in long and "critic:" not in long


def _unchanged(state: RunState) -> RunState:
    """Without a workspace repo to diff, mark results unchanged (no diff summaries asked)."""
    from dataclasses import replace

    return replace(state, subtasks={k: replace(v, changed=False)
                                    for k, v in state.subtasks.items()})


def test_plan_tool_names_the_known_roles_and_bases() -> None:
    state = long_run(3)
    args = plan_args(["engineer", "reproducer"], bases_of(state), max_n=2)
    with pytest.raises(ValidationError) as err:
        args.model_validate({"subtasks": [{"role": "enginer", "instructions": "x"}]})
    assert "unknown role 'enginer'; known roles: engineer, reproducer" in str(err.value)
    with pytest.raises(ValidationError) as err:
        args.model_validate({"subtasks": [{"role": "engineer", "instructions": "x",
                                           "base": "it999-01"}]})
    assert "unknown base 'it999-01'" in str(err.value) and "best, baseline" in str(err.value)
    with pytest.raises(ValidationError):
        args.model_validate({"subtasks": [{"role": "engineer", "instructions": "x"}] * 3})
    ok = args.model_validate({"subtasks": [{"role": "engineer", "instructions": "x",
                                            "base": "it001-01"}]})
    assert ok.subtasks[0].base == "it001-01"
    schema = args.model_json_schema()
    assert "enginer" not in str(schema) and "reproducer" in str(schema)
