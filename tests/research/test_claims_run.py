"""experiments/reproduce-paper end to end: real Docker, real git, the real grader.

* As shipped, the paper's code does not run (a hard-coded absolute data path). The search brain
  cannot change code: the run says so in one line, in `labcoat status` and `labcoat log`.
* A copy with that one line fixed, under the search brain: both claims are checked over the run
  seed and the critic's seeds; the true one is `reproduced`, the overstated one `not_reproduced`
  with its measured value, in `status` (text and JSON), the log and the report.
* The shipped experiment (without the critic) under a scripted LLM brain (the real OpenAI SDK
  against a local server): the reproducer fixes the path, its result is recorded as the
  reproduction fix (the baseline, not an improvement), nothing else starts before it exists,
  and then the claims are checked on it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import git
import pytest

from labcoat.log import load_state, read_events
from labcoat.log.reproduction import reproduction_fix
from tests.llm.brain import Team, Turn
from tests.loop.conftest import labcoat, run_dir_of
from tests.models.servers import FakeOpenAI

PAPER = Path(__file__).resolve().parents[2] / "experiments" / "reproduce-paper"
SNAG = 'DATA_DIR = Path("/home/mchen/projects/rff-digits/data")'
FIX = 'DATA_DIR = Path("data")'
pytestmark = pytest.mark.timeout(600)  # a search-brain run: about a minute on an idle machine

LINEAR = 0.957407
"""Logistic regression's test accuracy: the same at every seed (lbfgs is deterministic)."""


def fixed_copy(tmp: Path) -> Path:
    """The experiment with the snag fixed by hand: what the search brain can run."""
    exp = tmp / "reproduce-paper"
    shutil.copytree(PAPER, exp)
    code = exp / "workspace" / "reproduce.py"
    assert SNAG in code.read_text()
    code.write_text(code.read_text().replace(SNAG, FIX))
    return exp


def claims_of(run_dir: Path) -> list[dict[str, Any]]:
    proc = labcoat("status", str(run_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout)["claims"])


def assert_verdicts(claims: list[dict[str, Any]], commit: str) -> None:
    linear, rff = claims
    assert (linear["metric"], linear["verdict"]) == ("accuracy_linear", "reproduced")
    assert linear["mean"] == pytest.approx(LINEAR) and linear["std"] == 0.0
    assert (rff["metric"], rff["verdict"]) == ("accuracy", "not_reproduced")
    assert 0.965 < rff["mean"] < 0.984 and rff["std"] > 0  # claimed: 0.99 +- 0.005
    assert linear["seeds"] == rff["seeds"] == [0, 1, 2]  # the run seed and critic.seeds: 2
    assert linear["commit"] == rff["commit"] == commit


@pytest.mark.docker
def test_as_shipped_the_search_brain_says_plainly_that_the_baseline_does_not_run(
        tmp_path: Path) -> None:
    proc = labcoat("run", str(PAPER), "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    run_dir = run_dir_of(proc)
    status = labcoat("status", str(run_dir)).stdout
    line = next(ln for ln in status.splitlines() if ln.startswith("baseline  does not run"))
    assert "`python3 reproduce.py` exited 1: FileNotFoundError" in line
    assert "/home/mchen/projects/rff-digits/data/train.npz" in line
    assert "claims    2 claims: 2 unchecked" in status  # both listed, neither checkable
    assert "claim 2: unchecked: claimed accuracy 0.99 ± 0.005" in status
    timeline = labcoat("log", str(run_dir)).stdout
    failed = [ln for ln in timeline.splitlines() if " subtask_failed " in ln]
    assert len(failed) == 1 and "the baseline does not run: `python3 reproduce.py` exited 1: " \
        "FileNotFoundError" in failed[0]
    assert "Traceback" not in timeline
    assert load_state(run_dir).status == "finished"


@pytest.mark.docker
def test_search_brain_reproduces_the_true_claim_and_refutes_the_overstated_one(
        tmp_path: Path) -> None:
    proc = labcoat("run", str(fixed_copy(tmp_path)), "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    run_dir = run_dir_of(proc)
    state = load_state(run_dir)
    baseline = state.subtasks["it001-01"]
    assert state.baseline is not None and reproduction_fix(state) is None
    assert_verdicts(claims_of(run_dir), baseline.commit or "")
    # the checks graded the baseline's own commit: the run seed's grade was reused, not redone
    assert sorted(baseline.grades) == [0, 1, 2]
    assert sum(1 for e in read_events(run_dir) if e.type == "graded") == 3

    status = labcoat("status", str(run_dir)).stdout
    assert "claims    2 claims: 1 reproduced, 1 not_reproduced" in status
    refuted = next(ln for ln in status.splitlines() if "claim 2: not_reproduced" in ln)
    assert "claimed accuracy 0.99 ± 0.005" in refuted and "measured 0.97" in refuted
    timeline = labcoat("log", str(run_dir)).stdout
    assert timeline.count(" claim_checked ") == 2
    report = (run_dir / "report.md").read_text()
    assert "## Claims" in report
    assert "| 1 | accuracy_linear | 0.96 ± 0.01 |" in report and "**reproduced** |" in report
    assert "| 2 | accuracy | 0.99 ± 0.005 |" in report and "**not_reproduced** |" in report


class Reproducers(Team):
    """Plans an engineer in each iteration; the reproducer fixes the data path when the prompt
    says that the baseline does not run; the engineer regularises less."""

    def manager(self, t: Turn) -> tuple[str, Any]:
        return "propose_plan", {"rationale": "reproduce, then try more random features",
                                "subtasks": [{"role": "engineer", "base": "baseline",
                                              "instructions": "Try C = 100."}]}

    def engineer(self, t: Turn) -> tuple[str, Any]:
        old, new, summary = self.edit
        steps: list[tuple[str, Any]] = [
            ("read_file", {"path": "reproduce.py"}),
            ("edit_file", {"path": "reproduce.py", "old": old, "new": new}),
            ("submit", {"summary": summary})]
        return steps[min(t.turn, len(steps) - 1)]

    def reproducer(self, t: Turn) -> tuple[str, Any]:
        if "does not run as given" not in json.dumps(t.body["messages"][0]):
            return super().reproducer(t)
        steps: list[tuple[str, Any]] = [
            ("read_file", {"path": "reproduce.py"}),
            ("edit_file", {"path": "reproduce.py", "old": SNAG, "new": FIX}),
            ("run_experiment", {}),
            ("submit", {"summary": "the data path was absolute; made it relative to data/"})]
        return steps[min(t.turn, len(steps) - 1)]


@pytest.mark.docker
@pytest.mark.timeout(900)  # about two minutes on an idle machine; a shared one is slower
def test_an_llm_reproducer_fixes_the_snag_and_then_the_claims_are_checked(
        tmp_path: Path) -> None:
    # The shipped experiment without the critic (its re-grades would only lengthen the test).
    exp = tmp_path / "reproduce-paper"
    shutil.copytree(PAPER, exp)
    spec = exp / "experiment.yaml"
    roles = "roles: [reproducer, engineer, critic]"
    assert roles in spec.read_text()
    spec.write_text(spec.read_text().replace(roles, "roles: [reproducer, engineer]"))
    team = Reproducers(edit=("C = 10.0 ", "C = 100.0", "C = 100 on the random features"))
    with FakeOpenAI([team] * 60) as srv:
        proc = labcoat("run", str(exp), "--model", "openai:any", "--base-url", srv.base_url,
                       "--max-iterations", "2", "--parallel", "2",
                       "--runs-dir", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stderr
    run_dir = run_dir_of(proc)
    state = load_state(run_dir)
    assert state.status == "finished"

    # the fix: the reproducer's result, recorded as the reproduction fix and the baseline
    fix = reproduction_fix(state)
    assert fix is not None and fix.id == "it001-01" and fix.commit
    with git.Repo(run_dir / "workspace") as repo:
        code = repo.commit(fix.commit).tree["reproduce.py"].data_stream.read().decode()
    assert FIX in code and SNAG not in code
    assert fix.summary.startswith("reproduction fix: the data path was absolute")
    assert state.baseline == fix.metric and fix.metric is not None and fix.metric > 0.96

    # nothing else started before the fix existed: iteration 1's engineer, planned on the
    # initial commit, was withdrawn unstarted; iteration 2's starts from the fix
    events = read_events(run_dir)
    fixed_at = next(e.seq for e in events if e.type == "graded" and e.subtask_id == fix.id)
    started = [e for e in events if e.type == "subtask_started" and e.role != "reproducer"]
    assert started and all(e.seq > fixed_at for e in started)
    withdrawn = state.subtasks["it001-02"]
    assert withdrawn.status == "failed" and withdrawn.attempts == 0
    assert "withdrawn before it started" in (withdrawn.error or "")
    engineer = state.subtasks["it002-01"]
    assert engineer.subtask["base_commit"] == fix.commit and engineer.metric is not None

    # then the claims were checked, on the fix
    assert_verdicts(claims_of(run_dir), fix.commit)
    checked = [e for e in events if e.type == "claim_checked"]
    assert len(checked) == 2 and all(e.seq > fixed_at for e in checked)

    # the fix is shown apart from improvements
    assert "(reproduction fix)" in labcoat("log", str(run_dir)).stdout
    status = labcoat("status", str(run_dir)).stdout
    assert f"fix       it001-01 @ {fix.commit[:10]} is the baseline now" in status
    report = (run_dir / "report.md").read_text()
    fix_section = report.split("## Reproduction fix", 1)[1]
    assert '-DATA_DIR = Path("/home/mchen' in fix_section.split("## ", 1)[0]
    # the engineer's change, from the fix: an improvement is measured against the fix
    with git.Repo(run_dir / "workspace") as repo:
        change = changed_lines(repo.git.diff(fix.commit, engineer.commit))
    assert [ln.split("#")[0].strip() for ln in change] == ["-C = 10.0", "+C = 100.0"]
    if state.best is not None and state.best.subtask == engineer.id:
        best_change = report.split("## Best result's change from the baseline", 1)[1]
        assert changed_lines(best_change.split("```diff", 1)[1].split("```", 1)[0]) == change


def changed_lines(diff: str) -> list[str]:
    """The removed and added lines of a unified diff (no headers, no context)."""
    return [ln for ln in diff.splitlines()
            if ln[:1] in ("+", "-") and not ln.startswith(("+++", "---"))]
