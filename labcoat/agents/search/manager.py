"""The search brain's manager: plans each iteration from the log, with no LLM.

Iteration 1 runs the unmodified baseline (reproducer). Every iteration proposes `parallel`
trials (engineer subtasks) and gives each custom role the manager may use one subtask on the best
result so far. Review asks the critic to re-grade the leading candidate(s) with new seeds, and,
when experiment.yaml makes claims, a second reproducer subtask to check them on the baseline's
result over the run seed and the critic's seeds. Work starts from the baseline commit: the
reproduction fix when the reproducer had to make the baseline run (`labcoat.log.reproduction`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from labcoat.agents.manager import Plan
from labcoat.agents.role import Subtask
from labcoat.agents.search.propose import SAMPLER_NAMES, Sampler, Trial, propose, show_params
from labcoat.experiment import Experiment, SearchParam, baseline_params, best_value, sign
from labcoat.log import RunState, SubtaskState
from labcoat.log.reproduction import baseline_commit, reproducer

BUILTIN = ("reproducer", "engineer", "critic")


class SearchManager:
    """Plans from the run state alone, so a resumed run plans exactly what it would have."""

    brain = "search"

    def __init__(self, experiment: Experiment, roles: Sequence[str], *, parallel: int,
                 role_spaces: Mapping[str, Mapping[str, SearchParam]] | None = None,
                 sampler: Sampler = "search") -> None:
        self.experiment = experiment
        self.roles = list(roles)
        self.parallel = parallel
        self.role_spaces = dict(role_spaces or {})
        """Custom roles' parameter spaces (`role_params` over the roles' own `search_space`)."""
        self.sampler: Sampler = sampler
        """`search`, or `random` (the `random` brain: the floor the search brain must beat)."""

    async def plan(self, state: RunState, iteration: int) -> Plan:
        subtasks: list[Subtask] = []
        notes: list[str] = []
        if iteration == 1 and "reproducer" in self.roles:
            subtasks.append(self._subtask(iteration, subtasks, "reproducer", state.base_commit,
                                          state.seed, "Run the unmodified baseline as given."))
            notes.append("reproduce the baseline")
        trials = self._trials(state, iteration, len(subtasks))
        if trials:
            subtasks += trials
            notes.append(f"{len(trials)} {SAMPLER_NAMES[self.sampler]} trial(s) from the "
                         "search space")
        best = state.best
        start = best.commit if best and best.commit else baseline_commit(state)
        on = best.subtask if best else "the baseline"
        for role in self.custom_roles():
            subtasks.append(self._role_subtask(state, iteration, subtasks, role, start, on))
            notes.append(f"ask {role} to work on {on}")
        return Plan(subtasks, "; ".join(notes) or "nothing left to try")

    def custom_roles(self) -> list[str]:
        """Custom roles the experiment names in `roles:`. The search brain cannot judge a
        description, so it never hands work to a role merely because it is installed."""
        named = self.experiment.spec.roles or []
        return [r for r in named if r not in BUILTIN and r != "manager"]

    def _role_subtask(self, state: RunState, iteration: int, before: Sequence[Subtask],
                      role: str, start: str, on: str) -> Subtask:
        """A custom role's subtask; with a parameter space, one proposal from that role's own
        history (seeded by the run seed, the iteration and the role's name)."""
        spec = self.experiment.spec
        found = propose(self.role_spaces.get(role, {}), trial_history(state, role),
                        direction=spec.metric.direction, seed=state.seed, iteration=iteration,
                        n=1, salt=role, sampler=self.sampler, baseline=state.baseline)
        params = found[0] if found else {}
        with_ = f" with {show_params(params)}" if params else ""
        return self._subtask(iteration, before, role, start, state.seed,
                             f"Work on the best result so far ({on}){with_}.", params=params)

    def _trials(self, state: RunState, iteration: int, offset: int) -> list[Subtask]:
        if "engineer" not in self.roles:
            return []
        spec = self.experiment.spec
        params = propose(spec.search_space, trial_history(state), direction=spec.metric.direction,
                         seed=state.seed, iteration=iteration, n=self.parallel,
                         sampler=self.sampler, baseline=state.baseline,
                         baseline_params=baseline_params(spec.search_space))
        out: list[Subtask] = []
        for p in params:
            out.append(self._subtask(iteration, [None] * (offset + len(out)), "engineer",
                                     baseline_commit(state), state.seed, f"Try {show_params(p)}.",
                                     params=p))
        return out

    @staticmethod
    def _subtask(iteration: int, before: Sequence[Any], role: str, base: str, seed: int,
                 instructions: str, **extra: Any) -> Subtask:
        return Subtask(id=f"it{iteration:03d}-{len(before) + 1:02d}", iteration=iteration,
                       role=role, instructions=instructions, base_commit=base, seed=seed, **extra)

    async def review(self, state: RunState, iteration: int) -> Plan:
        """The claims check, then critic subtasks for leaders nobody has reviewed yet (empty
        when there is nothing to do)."""
        claims = self.claims_check(state, iteration)
        critics = await self._critics(state, iteration)
        why = [f"check the claims on {c.target}" for c in claims] + [critics.rationale]
        return Plan(claims + critics.subtasks, "; ".join(w for w in why if w))

    def claims_check(self, state: RunState, iteration: int) -> list[Subtask]:
        """A reproducer subtask that grades the baseline's result over the run seed and the
        critic's seeds and judges experiment.yaml's claims (once, in the reproducer's own
        iteration, after its result is graded: a reproduction fix is already in it)."""
        rec = reproducer(state)
        if (not self.experiment.spec.claims or "reproducer" not in self.roles or rec is None
                or rec.iteration != iteration or rec.status != "finished" or not rec.commit
                or any(s.subtask.get("target") == rec.id for s in state.subtasks.values()
                       if s.role == "reproducer")):
            return []
        seeds = (rec.seed, *critic_seeds(state, self.experiment.spec.critic.seeds))
        return [Subtask(id=f"it{iteration:03d}-c01", iteration=iteration, role="reproducer",
                        base_commit=rec.commit, seed=state.seed, target=rec.id, seeds=seeds,
                        instructions=f"Check the experiment's claims on {rec.id}'s result with "
                                     f"seeds {list(seeds)}.")]

    async def _critics(self, state: RunState, iteration: int) -> Plan:
        if "critic" not in self.roles:
            return Plan([], "")
        critic = self.experiment.spec.critic
        reviewed = {s.subtask.get("target") for s in state.subtasks.values() if s.role == "critic"}
        leaders = ranked(state)[: critic.leaders]
        targets = [s for s in leaders if s.id not in reviewed]
        seeds = critic_seeds(state, critic.seeds)
        done = sum(1 for s in state.subtasks.values()
                   if s.role == "critic" and s.iteration == iteration)
        out = [Subtask(id=f"it{iteration:03d}-r{done + k + 1:02d}", iteration=iteration,
                       role="critic", base_commit=t.commit or state.base_commit, seed=state.seed,
                       target=t.id, seeds=seeds, params={"reference": reference(state, t.id)},
                       instructions=f"Re-grade {t.id} with seeds {list(seeds)}; is its gain real?")
               for k, t in enumerate(targets)]
        return Plan(out, f"review leader(s) {', '.join(t.id for t in targets)}" if out else "")


def critic_seeds(state: RunState, count: int) -> tuple[int, ...]:
    """The seeds a critic re-grades with: the `count` seeds after the run seed."""
    return tuple(state.seed + 1 + i for i in range(count))


def trial_history(state: RunState, role: str = "engineer") -> list[Trial]:
    """Finished or failed trials of `role`, with their own-seed metric (None when failed)."""
    return [Trial(s.subtask["params"], s.metric) for s in state.subtasks.values()
            if s.role == role and s.subtask.get("params") and s.status in ("finished",
                                                                             "failed")]


def ranked(state: RunState) -> list[SubtaskState]:
    """Graded candidates (not the baseline, not measurements, not refuted), best first; plan
    order breaks ties."""
    pool = [s for s in state.subtasks.values()
            if s.status == "finished" and s.metric is not None and s.role != "reproducer"
            and s.verdict != "not_reproducible" and s.role != "critic" and s.candidate]
    order = {sid: i for i, sid in enumerate(state.subtasks)}
    return sorted(pool, key=lambda s: (-sign(state.direction) * (s.metric or 0.0), order[s.id]))


def reference(state: RunState, target: str) -> float | None:
    """What a leader must beat: the best of the baseline and results already reproduced."""
    values = [s.metric for s in state.subtasks.values()
              if s.id != target and s.metric is not None
              and (s.role == "reproducer" or s.verdict == "reproducible")]
    return best_value(values, state.direction)
