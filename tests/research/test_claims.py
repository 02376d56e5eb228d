"""Claims without Docker: the spec and its errors, the verdict rule, the fold and every view of
a real log written through the Journal, the search brain's claims check, and the schedule's
"baseline first" answers (pure functions of the log)."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from labcoat.agents.role import Subtask
from labcoat.agents.search import SearchManager
from labcoat.errors import SpecError
from labcoat.experiment import ClaimSpec, Experiment, load_experiment
from labcoat.experiment.claims import check_claim, check_claims
from labcoat.log import Journal
from labcoat.log.reproduction import as_data, baseline_commit, reproduction_fix
from labcoat.orchestrator.schedule import next_to_plan, planning_view, ready
from labcoat.views import claims as shown
from labcoat.views.render import summary
from labcoat.views.report import render
from labcoat.views.status import status_lines
from labcoat.views.web.app import create_app
from labcoat.views.web.runpage import reproduction
from tests.log.helpers import start

PAPER = Path(__file__).resolve().parents[2] / "experiments" / "reproduce-paper"
BASE, FIX = "b" * 40, "f" * 40


# --- the spec ---------------------------------------------------------------------------------

def paper_with(tmp: Path, claims: str) -> Path:
    exp = tmp / "paper"
    shutil.copytree(PAPER, exp)
    spec = exp / "experiment.yaml"
    spec.write_text(spec.read_text().split("claims:")[0] + "claims:\n" + claims)
    return exp


def test_the_bundled_claims_load_with_their_bands() -> None:
    exp = load_experiment(PAPER)
    assert [(c.metric, c.value, c.band) for c in exp.spec.claims] == [
        ("accuracy_linear", 0.96, 0.01), ("accuracy", 0.99, 0.005)]
    assert ClaimSpec(metric="m", value=-2.0, rel_tolerance=0.1).band == pytest.approx(0.2)


def test_each_bad_claim_is_one_line_naming_the_line_the_field_and_the_fix(tmp_path: Path) -> None:
    exp = paper_with(tmp_path, "  - {metric: accuracy, value: 0.9}\n"
                               "  - {metric: accuracy, value: 0.9, tolerance: 0.1, "
                               "rel_tolerance: 0.1}\n"
                               "  - {metric: accuracy, value: .nan, tolerence: 0.1}\n"
                               "  - {metric: '', value: 0.9, tolerance: -1}\n")
    with pytest.raises(SpecError) as err:
        load_experiment(exp)
    lines = str(err.value).splitlines()[1:]
    spec = exp / "experiment.yaml"
    first = len(spec.read_text().split("claims:")[0].splitlines()) + 2
    expected = [
        (first, "claims[0]: no `tolerance` or `rel_tolerance` given; fix: give exactly one"),
        (first + 1, "claims[1]: both `tolerance` and `rel_tolerance` given; fix: give exactly"),
        (first + 2, "claims[2].value: Input should be a finite number"),
        (first + 2, "claims[2].tolerence: unknown field; fix: did you mean `tolerance`?"),
        (first + 3, "claims[3].metric: String should have at least 1 character"),
        (first + 3, "claims[3].tolerance: Input should be greater than or equal to 0"),
    ]
    assert len(lines) == len(expected)
    for line, (number, text) in zip(lines, expected, strict=True):
        assert line.startswith(f"  - {spec}:{number}: {text}"), line
        assert "; fix: " in line


# --- the verdict rule -------------------------------------------------------------------------

CLAIM = ClaimSpec(metric="acc", value=0.90, tolerance=0.01)


@pytest.mark.parametrize(("values", "verdict"), [
    ({0: 0.905, 1: 0.900, 2: 0.903}, "reproduced"),        # mean 0.9027, noise 0.003: inside
    ({0: 0.950, 1: 0.950, 2: 0.950}, "not_reproduced"),    # exact, far outside the band
    ({0: 0.870, 1: 0.875, 2: 0.872}, "not_reproduced"),    # below the band, noise and all
    ({0: 0.909, 1: 0.914, 2: 0.911}, "inconclusive"),      # mean 0.9113 straddles 0.91
    ({0: 0.880, 1: 0.920, 2: 0.900}, "inconclusive"),      # noise 0.023 wider than the band
    ({0: 0.910, 1: 0.910}, "reproduced"),                  # exactly on the edge, no noise
    ({0: 0.900}, "inconclusive"),                          # one seed: the noise is unknown
    ({}, "inconclusive"),                                  # nothing graded
])
def test_the_verdict_rule(values: dict[int, float], verdict: str) -> None:
    v = check_claim(0, CLAIM, values, noise_sigmas=2.0)
    assert v.verdict == verdict, v.reason
    assert v.values == {str(k): x for k, x in values.items()}
    if len(values) >= 2:
        assert v.mean is not None and v.std is not None and f"{v.mean:.4g}" in v.reason
    else:
        assert v.std is None and "fewer than two" in v.reason


def test_each_claim_reads_its_own_metric_and_a_missing_one_is_inconclusive() -> None:
    claims = [ClaimSpec(metric="acc", value=0.9, tolerance=0.01),
              ClaimSpec(metric="f1", value=0.5, rel_tolerance=0.1, source="Table 3")]
    got = check_claims(claims, {0: {"acc": 0.9}, 1: {"acc": 0.9, "f1": float("nan")}},
                       noise_sigmas=2.0)
    assert [(v.claim, v.metric, v.verdict) for v in got] == [
        (0, "acc", "reproduced"), (1, "f1", "inconclusive")]
    assert got[1].mean is None and got[1].source == "Table 3" and got[1].tolerance == 0.05


# --- a run's log: the fold and every view -----------------------------------------------------

def claims_log(journal: Journal, exp: Experiment, *, brain: str = "search") -> None:
    """The LLM brain's path: the reproducer fixed the code, then the claims were checked."""
    start(journal, experiment=exp.spec.model_dump(mode="json"), base_commit=BASE, brain=brain)
    subs = [Subtask(id="it001-01", iteration=1, role="reproducer", instructions="x",
                    base_commit=BASE),
            Subtask(id="it001-02", iteration=1, role="engineer", instructions="x",
                    base_commit=BASE)]
    journal.append("plan_proposed", iteration=1, subtasks=subs, rationale="r")


def reproduce(journal: Journal, *, changed: bool = True) -> None:
    journal.append("subtask_started", iteration=1, subtask_id="it001-01", role="reproducer",
                   attempt=1, base_commit=BASE)
    journal.append("subtask_finished", iteration=1, subtask_id="it001-01", role="reproducer",
                   tree="t" * 40, changed=changed, summary="reproduction fix: a relative path")
    journal.append("graded", iteration=1, subtask_id="it001-01", commit=FIX, seed=0,
                   metrics={"accuracy": 0.978, "accuracy_linear": 0.957}, metric=0.978)


def check(journal: Journal, exp: Experiment) -> None:
    metrics = {seed: {"accuracy": 0.978 - 0.003 * seed, "accuracy_linear": 0.957}
               for seed in (0, 1, 2)}
    for v in check_claims(exp.spec.claims, metrics, noise_sigmas=2.0):
        journal.append("claim_checked", iteration=1, subtask_id="it001-c01", target="it001-01",
                       commit=FIX, **v.model_dump())


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal.open(tmp_path / "run", "run-claims", create=True) as j:
        yield j


def test_the_fold_and_every_view_show_the_claims_and_the_fix(journal: Journal) -> None:
    exp = load_experiment(PAPER)
    claims_log(journal, exp)
    before = [c.verdict for c in shown.claim_rows(journal.state)]
    assert before == ["unchecked", "unchecked"]
    reproduce(journal)
    check(journal, exp)
    state = journal.state
    fix = reproduction_fix(state)
    assert fix is not None and fix.commit == FIX and baseline_commit(state) == FIX

    data = json.loads(json.dumps(as_data(state)))  # what `status --json` adds
    assert [(c["claim"], c["verdict"], c["seeds"]) for c in data["claims"]] == [
        (0, "reproduced", [0, 1, 2]), (1, "not_reproduced", [0, 1, 2])]
    assert data["claims"][1]["mean"] == pytest.approx(0.975)
    assert data["reproduction_fix"]["subtask"] == "it001-01" and data["baseline_commit"] == FIX

    text = "\n".join(status_lines(state, Path("log.jsonl"), 0, None))
    assert f"fix       it001-01 @ {FIX[:10]} is the baseline now: reproduction fix" in text
    assert "claims    2 claims: 1 reproduced, 1 not_reproduced" in text
    assert "claim 2: not_reproduced: claimed accuracy 0.99 ± 0.005 (Table 2, row 2" in text
    assert "measured 0.975 ± 0.003 over seeds 0, 1, 2" in text

    events = [e for e in journal.events if e.type in ("claim_checked", "subtask_finished")]
    lines = [summary(e) for e in events]
    assert lines[0].startswith("it001-01 reproducer -> - (reproduction fix): ")
    assert lines[2].startswith(f"it001-c01 on it001-01 @ {FIX[:10]}: claim 2: not_reproduced")

    report = render(state, diff="", plot=None, fix_diff='-DATA_DIR = "/abs"\n+DATA_DIR = "data"')
    assert "| 2 | accuracy | 0.99 ± 0.005 | Table 2, row 2" in report
    assert "| 0.975 ± 0.003 over seeds 0, 1, 2 | **not_reproduced** |" in report
    assert "## Reproduction fix" in report and '+DATA_DIR = "data"' in report

    page = reproduction(state)
    assert page is not None and page.fix_subtask == "it001-01"
    assert [(r.number, r.verdict) for r in page.claims] == [(1, "reproduced"),
                                                           (2, "not_reproduced")]
    journal.flush()
    with TestClient(create_app(journal.run_dir.parent), base_url="http://127.0.0.1") as web:
        html = web.get(f"/runs/{journal.run_dir.name}/").text
    section = html[html.index('<section id="reproduction">'):]
    section = section[:section.index("</section>")]
    assert 'id="reproduction-fix"' in section and "it001-01" in section
    assert '<tr class="claim" data-claim="2">' in section
    assert '<span class="badge not_reproduced">not_reproduced</span>' in section
    assert "0.975 ± 0.003 over seeds 0, 1, 2" in section


def test_a_baseline_that_does_not_run_is_one_line_of_status(journal: Journal) -> None:
    claims_log(journal, load_experiment(PAPER))
    journal.append("subtask_failed", iteration=1, subtask_id="it001-01", role="reproducer",
                   error="the baseline does not run: `python3 reproduce.py` exited 1: "
                         "FileNotFoundError: /home/x/train.npz\nTraceback (most recent ...")
    lines = status_lines(journal.state, Path("log.jsonl"), 0, None)
    failing = [ln for ln in lines if "does not run" in ln]
    assert failing == ["baseline  does not run (it001-01): `python3 reproduce.py` exited 1: "
                       "FileNotFoundError: /home/x/train.npz"]
    page = reproduction(journal.state)
    assert page is not None and page.failure is not None and "Traceback" in page.failure


# --- planning: the claims check, and the baseline first ---------------------------------------

def test_the_search_brain_checks_the_claims_once_after_the_baseline_is_graded(
        journal: Journal) -> None:
    exp = load_experiment(PAPER)
    manager = SearchManager(exp, ["reproducer", "engineer", "critic"], parallel=1)
    claims_log(journal, exp)

    def review() -> list[Subtask]:
        return asyncio.run(manager.review(journal.state.as_of(1), 1)).subtasks

    assert review() == []  # the baseline has no result yet
    reproduce(journal, changed=False)
    no_claims = exp.spec.model_copy(update={"claims": []})
    other = SearchManager(Experiment(no_claims, exp.dir, exp.spec_path), ["reproducer"],
                          parallel=1)
    assert asyncio.run(other.review(journal.state.as_of(1), 1)).subtasks == []
    planned = review()
    assert [(s.id, s.role, s.target, s.seeds, s.base_commit) for s in planned] == [
        ("it001-c01", "reproducer", "it001-01", (0, 1, 2), FIX)]
    journal.append("plan_proposed", iteration=1, subtasks=planned, rationale="r")
    assert review() == []  # planned once


@pytest.mark.parametrize("brain", ["openai:gpt-4.1", "search"])
def test_with_a_model_nothing_else_starts_or_is_planned_before_the_baseline(
        journal: Journal, brain: str) -> None:
    claims_log(journal, load_experiment(PAPER), brain=brain)
    state = journal.state
    if brain == "search":  # it cannot change code: its trials run beside the reproducer
        assert [s.id for s in ready(state)] == ["it001-01", "it001-02"]
        assert next_to_plan(state, depth=2) == 2
        return
    assert [s.id for s in ready(state)] == ["it001-01"]
    assert next_to_plan(state, depth=2) is None
    reproduce(journal)
    state = journal.state
    assert [s.id for s in ready(state)] == ["it001-02"]  # the scheduler withdraws it now
    assert next_to_plan(state, depth=2) == 2
    view = planning_view(state, 2, depth=2)  # as iteration 0 closed, plus the fix
    assert list(view.subtasks) == ["it001-01"] and baseline_commit(view) == FIX


def test_only_work_planned_on_the_initial_commit_is_withdrawn(journal: Journal) -> None:
    from labcoat.orchestrator.baseline import superseded, withdrawn_reason

    claims_log(journal, load_experiment(PAPER), brain="openai:gpt-4.1")
    assert superseded(journal.state) == []
    reproduce(journal)
    later = Subtask(id="it002-01", iteration=2, role="engineer", instructions="x",
                    base_commit=FIX)
    journal.append("plan_proposed", iteration=2, subtasks=[later], rationale="r")
    assert [s.id for s in superseded(journal.state)] == ["it001-02"]
    assert f"the reproduction fix in it001-01 ({FIX[:10]})" in withdrawn_reason(journal.state)
