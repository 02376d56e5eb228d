"""The LLM brain's manager: plans each iteration with a model, through one `propose_plan` tool.

The model reads a bounded digest of the log (`labcoat.agents.llm.digest`) and calls
`propose_plan` with subtasks `{role, instructions, base}`, `base` being "best", "baseline" or a
subtask id. The arguments are validated like any tool call: an unknown role or base is a bad call
whose error (listing what is known) goes back to the model; three bad calls in a row raise a
`ModelError` (the run pauses, resumable). Iteration 1 always starts with a reproducer when the
experiment has one. A person's notes in the digest must each be answered in the plan's `notes`
(how the plan took it into account); a plan that leaves one out is a bad call, sent back.
Review is the search manager's: the critic examines the leaders nobody reviewed yet, with the
diff of each in its subtask.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from labcoat.agents.llm.digest import DEFAULT_DIGEST_TOKENS, digest, shown_notes, summarize_diff
from labcoat.agents.llm.toolloop import LoopLimits, run_tool_loop
from labcoat.agents.llm.tools import Submitted, Tool, ToolEnv
from labcoat.agents.llm.wiring import bind, journal_emit
from labcoat.agents.manager import Plan
from labcoat.agents.model import Model
from labcoat.agents.prompts import render_prompt
from labcoat.agents.role import Subtask
from labcoat.agents.search import SearchManager
from labcoat.errors import ModelError
from labcoat.experiment import Experiment
from labcoat.log import Journal, RunState
from labcoat.log.reproduction import baseline_commit
from labcoat.workspace import Workspace

NOT_PLANNED = ("critic", "manager")
"""Roles the manager does not hand plan work to: the critic is scheduled by review."""
PLAN_LIMITS = LoopLimits(max_turns=8, max_bad_calls=3, max_output_tokens=4096)
DIFF_CHARS = 6000
"""How much of a result's diff the critic's subtask carries."""
LOG_CHARS = 1500
"""How much of the end of a result's run log the critic's subtask carries."""


class PlannedSubtask(BaseModel):
    """One subtask as the model proposes it."""

    model_config = ConfigDict(extra="forbid")

    role: str = Field(description="A role from the list in the system prompt.")
    instructions: str = Field(min_length=1, description="Precise, self-contained instructions.")
    base: str = Field("best", description='Start from "best", "baseline" or a subtask id.')


class NoteAnswer(BaseModel):
    """How the plan took one of a person's notes into account."""

    model_config = ConfigDict(extra="forbid")

    note: int = Field(description="The note's number, from the digest.")
    answer: str = Field(min_length=1, description="What the plan does about it, and why.")


class PlanArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rationale: str = Field("", description="Why this plan, in two or three sentences.")
    subtasks: list[PlannedSubtask] = Field(description="The subtasks; empty when done.")
    notes: list[NoteAnswer] = Field(
        default_factory=list,
        description="For each note from a person in the digest: how this plan took it into "
                    "account.")


def plan_args(roles: Sequence[str], bases: Mapping[str, str], max_n: int,
              notes: Sequence[int] = ()) -> type[PlanArgs]:
    """`PlanArgs` that refuses unknown roles and bases, naming the known ones, and a plan that
    does not answer each of the person's `notes` (by number)."""
    known_bases = ["best", "baseline", *list(bases)[-12:]]

    class Item(PlannedSubtask):
        role: str = Field(description="One of: " + ", ".join(roles),
                          json_schema_extra={"enum": list(roles)})

        @field_validator("role")
        @classmethod
        def _known_role(cls, value: str) -> str:
            if value not in roles:
                raise ValueError(f"unknown role {value!r}; known roles: {', '.join(roles)}")
            return value

        @field_validator("base")
        @classmethod
        def _known_base(cls, value: str) -> str:
            if value not in bases:
                raise ValueError(f"unknown base {value!r}; use one of: {', '.join(known_bases)}")
            return value

    class Args(PlanArgs):
        subtasks: list[Item] = Field(max_length=max_n,  # type: ignore[assignment]
                                     description=f"At most {max_n} subtasks; empty when done.")

        @model_validator(mode="after")
        def _answers_notes(self) -> Args:
            check_answers(self.notes, notes)
            return self

    return Args


def check_answers(answers: Sequence[NoteAnswer], notes: Sequence[int]) -> None:
    """Every note the digest shows answered, and no other (ValueError says which)."""
    answered = {a.note for a in answers}
    if not answered <= set(notes):
        raise ValueError(f"`notes` answers note(s) {sorted(answered - set(notes))}, which the "
                         f"digest does not show; shown: {list(notes)}")
    missing = [n for n in notes if n not in answered]
    if missing:
        raise ValueError(f"say in `notes` how this plan takes the person's note(s) {missing} "
                         "into account")


def plan_tool(args: type[PlanArgs], holder: list[PlanArgs]) -> Tool:
    async def propose(value: PlanArgs, env: ToolEnv) -> str:
        holder.append(value)
        raise Submitted(value.rationale or "plan proposed")

    return Tool("propose_plan", "Propose this iteration's subtasks (this ends your turn).",
                args, propose)


def bases_of(state: RunState) -> dict[str, str]:
    """Base name -> commit: best, baseline (the reproduction fix when there is one), and every
    subtask with a result commit."""
    best, baseline = state.best, baseline_commit(state)
    out = {"best": best.commit if best and best.commit else baseline, "baseline": baseline}
    out.update({s.id: s.commit for s in state.subtasks.values() if s.commit})
    return out


class LlmManager:
    """Plans with a model; reviews like the search manager (with diffs for the critic)."""

    brain = "llm"

    def __init__(self, experiment: Experiment, roles: Sequence[str], *,
                 models: Callable[[str], Model], journal: Journal,
                 descriptions: Mapping[str, str], max_subtasks: int,
                 digest_tokens: int = DEFAULT_DIGEST_TOKENS) -> None:
        self.experiment, self.models, self.journal = experiment, models, journal
        self.roles = [r for r in roles if r not in NOT_PLANNED]
        self.descriptions = descriptions
        self.max_subtasks = max(1, max_subtasks)
        self.digest_tokens = digest_tokens
        self.search = SearchManager(experiment, roles, parallel=max_subtasks)
        self._diffs: dict[tuple[str, str], str] = {}
        self._ws: Workspace | None = None

    # -- plan ----------------------------------------------------------------------------------

    async def plan(self, state: RunState, iteration: int) -> Plan:
        model = bind(self.models("manager"), "manager", journal_emit(self.journal, iteration))
        holder: list[PlanArgs] = []
        notes = [n.number for n in shown_notes(state, self.digest_tokens)]
        tool = plan_tool(plan_args(self.roles, bases_of(state), self.max_subtasks, notes), holder)
        outcome = await run_tool_loop(
            model, system=self.system_prompt(state), task=self.task(state, iteration),
            sandbox=None, tools=(tool,), limits=PLAN_LIMITS,
            emit=journal_emit(self.journal, iteration))
        if outcome.status != "submitted" or not holder:
            raise ModelError(f"the manager model {model.name} gave no valid plan for iteration "
                             f"{iteration}: {outcome.reason}. Try another --role-model "
                             "manager=..., then `labcoat resume` the run")
        return self.to_plan(state, iteration, holder[-1])

    def system_prompt(self, state: RunState) -> str:
        spec = self.experiment.spec.model_copy(update={"goal": state.config.get("goal")
                                                       or self.experiment.spec.goal})
        roles = [{"name": r, "description": self.descriptions.get(r, "")} for r in self.roles]
        return render_prompt("manager", experiment_dir=self.experiment.dir, experiment=spec,
                             roles=roles, max_subtasks=self.max_subtasks,
                             digest=digest(state, diff=self.diff_summary,
                                           max_tokens=self.digest_tokens))

    def task(self, state: RunState, iteration: int) -> str:
        first = " A reproducer run of the baseline is added for you." \
            if self._needs_reproducer(state, iteration) else ""
        notes = [str(n.number) for n in shown_notes(state, self.digest_tokens)]
        answer = (f" A person left note(s) {', '.join(notes)}: say in `notes` how this plan "
                  "takes each into account." if notes else "")
        return (f"Plan iteration {iteration}: call `propose_plan` with at most "
                f"{self.max_subtasks} subtask(s).{first}{answer}")

    def _needs_reproducer(self, state: RunState, iteration: int) -> bool:
        return iteration == 1 and "reproducer" in self.roles and not any(
            s.role == "reproducer" and s.status != "declined" for s in state.subtasks.values())

    def to_plan(self, state: RunState, iteration: int, args: PlanArgs) -> Plan:
        bases = bases_of(state)
        items = [("reproducer", "Run the unmodified baseline as given and check that it works.",
                  state.base_commit)] if self._needs_reproducer(state, iteration) else []
        items += [(s.role, s.instructions, bases[s.base]) for s in args.subtasks
                  if not (items and s.role == "reproducer")]
        subtasks = [Subtask(id=f"it{iteration:03d}-{k:02d}", iteration=iteration, role=role,
                            instructions=text, base_commit=base, seed=state.seed)
                    for k, (role, text, base) in enumerate(items, start=1)]
        return Plan(subtasks, args.rationale or "(no rationale given)",
                    notes={a.note: a.answer for a in args.notes})

    # -- review --------------------------------------------------------------------------------

    async def review(self, state: RunState, iteration: int) -> Plan:
        """Critic subtasks for unreviewed leaders, each carrying the diff under review."""
        plan = await self.search.review(state, iteration)
        out = [self._with_diff(state, s) if s.role == "critic" else s for s in plan.subtasks]
        return Plan(out, plan.rationale)

    def _with_diff(self, state: RunState, sub: Subtask) -> Subtask:
        assert sub.target is not None, "a review subtask names its target"
        target = state.subtasks[sub.target]
        base = str(target.subtask.get("base_commit", state.base_commit))
        text = self._diff(base, target.commit) if target.commit else ""
        params = {**sub.params, "diff": text[:DIFF_CHARS], "summary": target.summary,
                  "logs": self._run_log(sub.target)}
        return sub.model_copy(update={"params": params, "instructions": (
            f"Review {sub.target}: is its result real and honestly obtained? Reproduce it with "
            f"other seeds (e.g. {list(sub.seeds)}) when in doubt.")})

    def _diff(self, base: str, commit: str) -> str:
        key = (base, commit)
        if key not in self._diffs:
            self._diffs[key] = self._workspace().diff(base, commit, max_chars=DIFF_CHARS)
        return self._diffs[key]

    def _workspace(self) -> Workspace:
        if self._ws is None:
            self._ws = Workspace(Path(self.journal.run_dir) / "workspace")
        return self._ws

    def _run_log(self, sid: str) -> str:
        """The tail of the target's graded `run` step (never the evaluate step's output)."""
        path = Path(self.journal.run_dir) / "artifacts" / sid / "run.log"
        return path.read_text(errors="replace")[-LOG_CHARS:] if path.is_file() else ""

    def diff_summary(self, base: str, commit: str) -> str:
        return summarize_diff(self._diff(base, commit))


__all__ = ["LlmManager", "NoteAnswer", "PlanArgs", "PlannedSubtask", "bases_of", "plan_args"]
