"""Custom roles under the search brain, from the log alone (no Docker): a role's parameter space
(`role_params`, or its own `search_space` attribute) gets proposals like the engineer's; a
measurement (`candidate=False`) is never the best, never a leader, never critiqued; the critic
calls a worse result worse. The logs are real ones, written through the Journal."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from labcoat.agents import RoleResult
from labcoat.agents.judge import judge
from labcoat.agents.registry import RoleRegistry, declared_space, role_spaces
from labcoat.agents.search import SearchManager, ranked
from labcoat.errors import ConfigError, SpecError
from labcoat.experiment import Experiment, SearchParam, load_experiment
from labcoat.experiment.spec import ExperimentSpec
from labcoat.log import Journal, load_state
from labcoat.orchestrator.dispatch import candidate_of
from tests.log.helpers import start
from tests.loop.conftest import make_experiment

ROLES = ["reproducer", "engineer", "critic", "ablator"]
DROP = {"drop": {"type": "categorical", "choices": ["x", "y", "z"]}}


def experiment(tmp_path: Path) -> Experiment:
    return load_experiment(make_experiment(tmp_path / "toy", roles=ROLES,
                                           role_params={"ablator": DROP}))


def manager(exp: Experiment) -> SearchManager:
    spaces = role_spaces(RoleRegistry(), exp.spec.roles or [], exp.spec.role_params)
    return SearchManager(exp, ROLES, parallel=2, role_spaces=spaces)


def finish(journal: Journal, sid: str, role: str, score: float, *,
           candidate: bool = True) -> None:
    journal.append("subtask_started", subtask_id=sid, role=role, attempt=1, base_commit="c0")
    journal.append("subtask_finished", subtask_id=sid, role=role, tree="t" * 40,
                   candidate=candidate)
    journal.append("graded", subtask_id=sid, commit=f"{sid:0<40}", seed=5,
                   metrics={"score": score}, metric=score)


def test_a_custom_role_gets_proposals_from_its_own_space(tmp_path: Path) -> None:
    exp = experiment(tmp_path)
    with Journal.open(tmp_path / "run", "run-1", create=True) as journal:
        start(journal, seed=5, experiment=exp.spec.model_dump(mode="json"))
        first = asyncio.run(manager(exp).plan(journal.state, 1))
        (ablate,) = [s for s in first.subtasks if s.role == "ablator"]
        assert set(ablate.params) == {"drop"} and ablate.params["drop"] in ("x", "y", "z")
        assert f"drop={ablate.params['drop']}" in ablate.instructions
        assert first == asyncio.run(manager(exp).plan(journal.state, 1))  # same log, same plan
        journal.append("plan_proposed", iteration=1, subtasks=first.subtasks, rationale="")
        for sub, score in zip(first.subtasks, [0.6, 0.7, 0.8, 0.95], strict=True):
            finish(journal, sub.id, sub.role, score, candidate=sub.role != "ablator")
        second = asyncio.run(manager(exp).plan(load_state(tmp_path / "run"), 2))
    later = [s for s in second.subtasks if s.role == "ablator"]
    assert len(later) == 1 and later[0].params["drop"] in ("x", "y", "z")
    engineers = [s.params for s in second.subtasks if s.role == "engineer"]
    assert all(set(p) == {"x"} for p in engineers)  # the engineer keeps its own space


def test_a_role_declares_its_space_and_the_experiment_overrides_it() -> None:
    class Sweeper:
        name, description = "sweeper", "sweeps"
        search_space = {"width": {"type": "int", "low": 1, "high": 8}}

        async def run(self, subtask: object, ctx: object) -> RoleResult:
            return RoleResult()

    registry = RoleRegistry()
    registry.register("sweeper", Sweeper)
    own = role_spaces(registry, ["engineer", "sweeper"], {})
    assert list(own) == ["sweeper"] and own["sweeper"]["width"].type == "int"
    exp_space = load_experiment_space()
    overridden = role_spaces(registry, ["sweeper"], {"sweeper": exp_space})
    assert list(overridden["sweeper"]) == ["depth"]

    class Wrong(Sweeper):
        search_space = {"width": {"type": "int", "low": 8, "high": 1}}

    with pytest.raises(ConfigError, match=r"role sweeper: its `search_space` attribute is "
                                          r"invalid at width.*low \(8\) must be below"):
        declared_space(Wrong())


def load_experiment_space() -> dict[str, SearchParam]:
    spec = ExperimentSpec.model_validate({
        "name": "t", "run": "true", "evaluate": "true",
        "metric": {"name": "m", "direction": "maximize"}, "roles": ["sweeper"],
        "role_params": {"sweeper": {"depth": {"type": "int", "low": 1, "high": 3}}}})
    return dict(spec.role_params["sweeper"])


@pytest.mark.parametrize(("role_params", "roles", "message"), [
    ({"engineer": DROP}, None, "'engineer' is a built-in role; fix: give the engineer's "
                               "parameters in `search_space`"),
    ({"ablator": DROP}, ["reproducer", "engineer"], "'ablator' is not in `roles:`, so no "
                                                    "subtask would ever use them"),
    ({"ablator": {"Drop": DROP["drop"], "drop": DROP["drop"]}}, None,
     "parameters 'Drop' and 'drop' both become LABCOAT_PARAM_DROP"),
])
def test_role_params_that_could_never_work_are_refused(
        tmp_path: Path, role_params: dict[str, object], roles: list[str] | None,
        message: str) -> None:
    extra: dict[str, object] = {"role_params": role_params}
    if roles is not None:
        extra["roles"] = roles
    with pytest.raises(SpecError) as err:
        load_experiment(make_experiment(tmp_path / "bad", **extra))
    assert message in str(err.value) and "experiment.yaml:" in str(err.value)


def test_a_measurement_is_never_best_never_a_leader_never_reviewed(tmp_path: Path) -> None:
    exp = experiment(tmp_path)
    with Journal.open(tmp_path / "run", "run-1", create=True) as journal:
        start(journal, seed=5, experiment=exp.spec.model_dump(mode="json"))
        subs = asyncio.run(manager(exp).plan(journal.state, 1)).subtasks
        journal.append("plan_proposed", iteration=1, subtasks=subs, rationale="")
        # The ablation scores best of all (0.99), yet it measures, it does not compete.
        for sub, score in zip(subs, [0.6, 0.7, 0.8, 0.99], strict=True):
            finish(journal, sub.id, sub.role, score, candidate=sub.role != "ablator")
        state = journal.state
        review = asyncio.run(manager(exp).review(state, 1))
    ablation = next(s for s in state.subtasks.values() if s.role == "ablator")
    assert not ablation.candidate and ablation.metric == 0.99
    assert state.best is not None and state.best.subtask == subs[2].id  # 0.8, an engineer
    assert ablation.id not in [s.id for s in ranked(state)]
    assert [c.target for c in review.subtasks] == [subs[2].id]
    assert load_state(tmp_path / "run").to_dict()["subtasks"][ablation.id]["candidate"] is False


def test_a_result_says_measurement_or_its_role_declares_it() -> None:
    class Plain:
        name, description = "plain", ""

    class Measures(Plain):
        candidate = False

    assert candidate_of(RoleResult(), Plain()) is True  # type: ignore[arg-type]
    assert candidate_of(RoleResult(), Measures()) is False  # type: ignore[arg-type]
    assert candidate_of(RoleResult(candidate=False), Plain()) is False  # type: ignore[arg-type]
    assert candidate_of(RoleResult(candidate=True), Measures()) is True  # type: ignore[arg-type]


def test_the_critic_calls_a_worse_result_worse() -> None:
    spec = experiment_spec()
    worse = judge("t", {"0": 0.10, "1": 0.11, "2": 0.12}, reference=0.68, spec=spec)
    assert worse.verdict == "not_reproducible"
    assert "worse: a loss of 0.57, well beyond the noise (0.02)" in worse.reason
    assert "gain" not in worse.reason
    slightly = judge("t", {"0": 0.66, "1": 0.70, "2": 0.68}, reference=0.69, spec=spec)
    assert "worse: a loss of 0.01, within the noise" in slightly.reason
    better = judge("t", {"0": 0.90, "1": 0.91, "2": 0.92}, reference=0.68, spec=spec)
    assert better.verdict == "reproducible" and "gain 0.23 exceeds the noise" in better.reason


def experiment_spec() -> ExperimentSpec:
    return ExperimentSpec.model_validate({
        "name": "t", "run": "true", "evaluate": "true",
        "metric": {"name": "accuracy", "direction": "maximize"}})
