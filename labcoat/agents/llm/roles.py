"""What the roles do when they have a model (`ctx.model` is set): the shared tool loop.

* engineer / reproducer / role files: the loop in the role's sandbox with the rendered prompt;
  `submit` ends it with a summary, the run then collects /workspace and commits it, and grading
  happens afterwards without the model. A reproducer's result keeps the base tree (it changes
  nothing, so the baseline is what gets graded), except when the baseline did not run as given:
  then the prompt says why, the model makes the smallest change that makes it run, and that
  change is kept as the reproduction fix.
* critic: no sandbox; tools `reproduce` (grades the result again with other seeds through
  `ctx.grade`, the honest pipeline) and `verdict` (ends the review with a `Critique`).

The loop ending on a limit or on unusable model output fails the subtask (`ok=False`). Model
errors the person must act on (auth, quota, budget, provider down) propagate out of the role.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from labcoat.agents.judge import judge, reference_of
from labcoat.agents.llm.toolloop import LoopLimits, LoopOutcome, run_tool_loop
from labcoat.agents.llm.tools import DEFAULT_TOOLS, Submitted, Tool, ToolEnv
from labcoat.agents.llm.wiring import adapt, bind
from labcoat.agents.prompts import render_prompt
from labcoat.agents.role import Critique, RoleContext, RoleResult, Subtask, Verdict
from labcoat.experiment import ExperimentSpec
from labcoat.log import SubtaskState

MAX_REPRODUCE_SEEDS = 5


class InstructedRole(Protocol):
    """A role whose instructions and tool choice come from a file (`labcoat.agents.fileroles`)."""

    name: str
    description: str
    instructions: str
    tools: tuple[str, ...] | None


def loop_limits(ctx: RoleContext) -> LoopLimits:
    """`limits` from the run config over defaults scaled to the experiment's timeout."""
    timeout = float(ctx.spec.spec.resources.timeout_s)
    known = {k: v for k, v in dict(ctx.limits).items() if k in LoopLimits.model_fields}
    return LoopLimits(**({"exec_timeout_s": timeout, "max_seconds": 3 * timeout} | known))


def experiment_view(ctx: RoleContext) -> ExperimentSpec:
    """The spec as the prompts show it, with the run's own goal."""
    spec = ctx.spec.spec
    goal = (ctx.state.config.get("goal") if ctx.state is not None else None) or spec.goal
    return spec.model_copy(update={"goal": goal})


def run_command(ctx: RoleContext) -> str:
    spec = ctx.spec.spec
    return " && ".join(c for c in (spec.setup, spec.run) if c)


def result_of(outcome: LoopOutcome, *, changes: bool) -> RoleResult:
    if outcome.status == "submitted":
        return RoleResult(summary=outcome.summary, changes=changes)
    what = "hit a limit" if outcome.status == "limits" else "gave up"
    return RoleResult(ok=False, error=f"the model {what} after {outcome.turns} turn(s): "
                      f"{outcome.reason}")


async def loop(name: str, subtask: Subtask, ctx: RoleContext, *, system: str,
               tools: Sequence[Tool] = DEFAULT_TOOLS) -> LoopOutcome:
    """The tool loop for one subtask, its events tagged with the subtask."""
    model = bind(ctx.model, name, ctx.emit, subtask.id)
    task = (f"Subtask {subtask.id}: {subtask.instructions}\n\nWhen you are done, call "
            f"`{tools[-1].name}`.")
    return await run_tool_loop(model, system=system, task=task, sandbox=ctx.sandbox,
                               tools=tools, limits=loop_limits(ctx),
                               emit=adapt(ctx.emit, subtask.id), run_cmd=run_command(ctx))


async def work(name: str, subtask: Subtask, ctx: RoleContext) -> RoleResult:
    """Engineer or reproducer with a model."""
    system = render_prompt(name, experiment_dir=ctx.spec.dir, experiment=experiment_view(ctx),
                           subtask=subtask, instructions=ctx.instructions)
    outcome = await loop(name, subtask, ctx, system=system)
    return result_of(outcome, changes=name != "reproducer")


async def reproduce(subtask: Subtask, ctx: RoleContext, failure: str | None) -> RoleResult:
    """The reproducer with a model. `failure`: why the baseline did not run as given (None when
    it ran); only then are the model's changes kept, as the reproduction fix."""
    system = render_prompt("reproducer", experiment_dir=ctx.spec.dir,
                           experiment=experiment_view(ctx), subtask=subtask,
                           instructions=ctx.instructions, failure=failure)
    outcome = await loop("reproducer", subtask, ctx, system=system)
    return result_of(outcome, changes=failure is not None)


async def run_file_role(role: InstructedRole, subtask: Subtask, ctx: RoleContext) -> RoleResult:
    """A Markdown role file: its body is the instructions, its `tools:` the tool choice."""
    experiment = render_prompt("_experiment", experiment_dir=ctx.spec.dir,
                               experiment=experiment_view(ctx))
    system = (f"You are the {role.name} of an autonomous research lab: {role.description}\n\n"
              f"{experiment}\n{role.instructions}\n")
    wanted = set(role.tools) | {"submit"} if role.tools is not None else None
    tools = [t for t in DEFAULT_TOOLS if wanted is None or t.name in wanted]
    outcome = await loop(role.name, subtask, ctx, system=system, tools=tools)
    return result_of(outcome, changes=True)


# -- the critic --------------------------------------------------------------------------------

class ReproduceArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seeds: list[int] = Field(min_length=1, max_length=MAX_REPRODUCE_SEEDS,
                             description="Seeds to grade the result with (new ones).")


class VerdictArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: Verdict
    reason: str = Field(min_length=1, description="Why: the numbers and what you checked.")


class Review:
    """One critic review: the scores seen so far and the verdict once given."""

    def __init__(self, subtask: Subtask, ctx: RoleContext, commit: str,
                 scores: dict[str, float]) -> None:
        self.subtask, self.ctx, self.commit, self.scores = subtask, ctx, commit, scores
        self.verdict: VerdictArgs | None = None

    async def reproduce(self, args: ReproduceArgs, env: ToolEnv) -> str:
        name = self.ctx.spec.spec.metric.name
        lines = []
        for seed in args.seeds:
            metrics = await self.ctx.grade(self.commit, seed)
            value = None if metrics is None else metrics.get(name)
            if value is not None:
                self.scores[str(seed)] = value
            lines.append(f"seed {seed}: " + ("grading failed" if value is None
                                             else f"{name} = {value:.6g}"))
        return "\n".join([*lines, self.noise_note()])

    def noise_note(self) -> str:
        ref = reference_of(self.subtask)
        return "analysis: " + judge(self.subtask.target or "", self.scores, reference=ref,
                                    spec=self.ctx.spec.spec).reason

    async def give_verdict(self, args: VerdictArgs, env: ToolEnv) -> str:
        self.verdict = args
        raise Submitted(args.reason)

    def tools(self) -> tuple[Tool, ...]:
        return (Tool("reproduce", "Grade the result again with other seeds (the honest grader "
                     "runs; you get the metric per seed).", ReproduceArgs, self.reproduce),
                Tool("verdict", "End the review with your verdict and its reasons.",
                     VerdictArgs, self.give_verdict))

    def critique(self) -> Critique:
        assert self.verdict is not None
        values = list(self.scores.values())
        spread = len(values) >= 2
        return Critique(target=self.subtask.target or "", verdict=self.verdict.verdict,
                        reason=self.verdict.reason, metrics_by_seed=dict(self.scores),
                        mean=statistics.fmean(values) if values else None,
                        std=statistics.stdev(values) if spread else None)


async def review(subtask: Subtask, ctx: RoleContext) -> RoleResult:
    """The critic with a model: read the diff, logs and grade; reproduce; give a verdict."""
    target = ctx.state.subtasks.get(subtask.target) if ctx.state and subtask.target else None
    if target is None or not target.commit:
        return RoleResult(ok=False, grade=False, changes=False,
                          error=f"nothing to review: {subtask.target} has no result commit")
    scores = {str(target.seed): target.metric} if target.metric is not None else {}
    session = Review(subtask, ctx, target.commit, scores)
    outcome = await loop("critic", subtask, ctx, system=critic_prompt(subtask, ctx, target),
                         tools=session.tools())
    if outcome.status != "submitted" or session.verdict is None:
        failed = result_of(outcome, changes=False)
        return failed.model_copy(update={"grade": False})
    critique = session.critique()
    return RoleResult(summary=f"{critique.verdict}: {critique.reason}", critique=critique,
                      grade=False, changes=False)


def critic_prompt(subtask: Subtask, ctx: RoleContext, target: SubtaskState) -> str:
    params = subtask.params
    name = ctx.spec.spec.metric.name
    grade = (f"{name} = {target.metric} at seed {target.seed}; baseline "
             f"{ctx.state.baseline}; reference to beat: {params.get('reference')}; the "
             f"author's summary: {params.get('summary') or target.summary or '-'}")
    return render_prompt("critic", experiment_dir=ctx.spec.dir, experiment=experiment_view(ctx),
                         subtask=subtask, diff=params.get("diff") or "(no diff recorded)",
                         grade=grade, logs=params.get("logs") or "",
                         instructions=ctx.instructions)


__all__ = ["reproduce", "review", "run_file_role", "work"]
