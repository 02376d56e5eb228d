"""The built-in roles: reproducer, engineer, critic.

Without a model (the search brain) each does its job mechanically: the reproducer runs the
unmodified baseline, the engineer applies a trial's parameters, the critic re-grades leaders with
new seeds. With a model they run the shared tool loop (`labcoat.agents.llm.toolloop`).

The reproducer always runs the baseline as given first. When it does not run, the search brain
says so plainly (the subtask fails with the reason), and a reproducer with a model tries to make
it run: its changes are kept as the reproduction fix (`labcoat.log.reproduction`), and only when
the baseline then runs. A reproducer subtask with a `target` checks experiment.yaml's claims on
that reproducer's result, mechanically under either brain (`labcoat.experiment.claims`).
"""

from __future__ import annotations

import json
from typing import Any

from labcoat import text
from labcoat.agents.judge import judge, reference_of
from labcoat.agents.role import RoleContext, RoleResult, Subtask
from labcoat.agents.search.propose import show_params
from labcoat.experiment import trial_env
from labcoat.experiment.claims import ClaimVerdict, check_claims
from labcoat.sandboxes.base import ExecResult


async def exec_logged(ctx: RoleContext, subtask: Subtask, cmd: str, *,
                      env: dict[str, str] | None = None) -> ExecResult:
    """Run `cmd` in the role's sandbox with the experiment's timeout and log a `sandbox_exec`."""
    assert ctx.sandbox is not None
    res = await ctx.sandbox.exec(cmd, env=env, timeout_s=ctx.spec.spec.resources.timeout_s)
    ctx.emit("sandbox_exec", {"subtask_id": subtask.id, **res.log_fields(cmd)})
    return res


async def _llm_work(name: str, subtask: Subtask, ctx: RoleContext) -> RoleResult:
    from labcoat.agents.llm.roles import work

    return await work(name, subtask, ctx)


class Reproducer:
    name = "reproducer"
    description = ("Runs the unmodified baseline exactly as given, to check that it works and to "
                   "establish the reference metric every other result is compared with; checks "
                   "the experiment's claims over several seeds. With a model, makes a baseline "
                   "that does not run run (a reproduction fix, never an improvement).")

    async def run(self, subtask: Subtask, ctx: RoleContext) -> RoleResult:
        if subtask.target:
            return await _check_claims(subtask, ctx)
        failure = await baseline_failure(ctx, subtask)
        if ctx.model is not None:
            return await _reproduce_with_model(subtask, ctx, failure)
        if failure is not None:
            return RoleResult(ok=False, error=f"{failure}\nfix: make the baseline run and start "
                              "a new run, or run with --model so that the reproducer tries to")
        return RoleResult(summary="ran the unmodified baseline", changes=False)


async def baseline_failure(ctx: RoleContext, subtask: Subtask) -> str | None:
    """Run `setup` and `run` as given; None when they work, else why not (its first line says
    it plainly: the command, how it ended and the last line of its output)."""
    spec = ctx.spec.spec
    # In /workspace, exactly where grading runs it (a copy in /tmp would meet a noexec tmpfs
    # capped at 512 MB). Its outputs never reach the result commit unless the role keeps its
    # changes (a reproduction fix), and then the workspace's .gitignore applies.
    for cmd in filter(None, [spec.setup, spec.run]):
        res = await exec_logged(ctx, subtask, cmd, env=trial_env({}, subtask.seed))
        if not res.ok:
            output = res.stderr.strip() or res.stdout.strip() or "(no output)"
            return (f"the baseline does not run: `{cmd}` {res.outcome}: "
                    f"{output.splitlines()[-1][:300]}\n{text.tail(output, 1500)}")
    return None


async def _reproduce_with_model(subtask: Subtask, ctx: RoleContext,
                                failure: str | None) -> RoleResult:
    """The model reproduces a baseline that runs (changing nothing), or makes one that does not
    run run; a fix counts only when the baseline then runs as given."""
    from labcoat.agents.llm.roles import reproduce

    result = await reproduce(subtask, ctx, failure)
    if failure is None or not result.ok:
        return result
    still = await baseline_failure(ctx, subtask)
    if still is not None:
        return RoleResult(ok=False, error=f"the reproducer could not make the baseline run; "
                          f"after its changes, {still}")
    return result.model_copy(update={"summary": f"reproduction fix: {result.summary}"})


async def _check_claims(subtask: Subtask, ctx: RoleContext) -> RoleResult:
    """Grade the target's result at each seed of the subtask; one `claim_checked` per claim."""
    target = ctx.state.subtasks.get(subtask.target or "") if ctx.state else None
    if target is None or not target.commit:
        return RoleResult(ok=False, grade=False, changes=False, error=(
            f"no baseline result to check the claims on: {subtask.target} has no commit"))
    spec = ctx.spec.spec
    metrics: dict[int, dict[str, float]] = {}
    for seed in dict.fromkeys(subtask.seeds or (target.seed,)):
        graded = await ctx.grade(target.commit, seed)
        if graded is not None:
            metrics[seed] = graded
    verdicts = check_claims(spec.claims, metrics, noise_sigmas=spec.critic.noise_sigmas)
    for v in verdicts:
        ctx.emit("claim_checked", {"subtask_id": subtask.id, "target": target.id,
                                   "commit": target.commit, **v.model_dump()})
    return RoleResult(summary=claims_summary(verdicts), grade=False, changes=False)


def claims_summary(verdicts: list[ClaimVerdict]) -> str:
    """`claim 1 (accuracy, Table 2): reproduced; claim 2 ...` for the subtask's summary."""
    if not verdicts:
        return "the experiment makes no claims"
    return "; ".join(f"claim {v.claim + 1}: {v.verdict} ({v.reason})" for v in verdicts)


class Engineer:
    name = "engineer"
    description = ("Changes the experiment to try an idea: applies a trial's parameters "
                   "(search brain) or edits the code (LLM brain), then submits the result.")

    async def run(self, subtask: Subtask, ctx: RoleContext) -> RoleResult:
        assert ctx.sandbox is not None
        if ctx.model is not None:
            return await _llm_work(self.name, subtask, ctx)
        if not subtask.params:
            return RoleResult(ok=False, error="engineer without a model needs trial parameters; "
                              "give the experiment a search_space or run with --model")
        current = await _read_params(ctx)
        params = {**current, **subtask.params}
        await ctx.sandbox.write_file("/workspace/params.json",
                                     json.dumps(params, indent=2, sort_keys=True) + "\n")
        return RoleResult(summary=f"set {show_params(dict(sorted(subtask.params.items())))}")


async def _read_params(ctx: RoleContext) -> dict[str, Any]:
    assert ctx.sandbox is not None
    res = await ctx.sandbox.exec("cat /workspace/params.json 2>/dev/null || echo '{}'")
    try:
        value = json.loads(res.stdout or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class Critic:
    name = "critic"
    description = ("Checks results: re-runs the leading candidates with new seeds and marks a "
                   "gain that stays within the seed noise as not reproducible.")
    uses_sandbox = False

    async def run(self, subtask: Subtask, ctx: RoleContext) -> RoleResult:
        if ctx.model is not None:
            from labcoat.agents.llm.roles import review

            return await review(subtask, ctx)
        target = ctx.state.subtasks.get(subtask.target or "") if ctx.state else None
        if target is None or not target.commit:
            return RoleResult(ok=False, error=f"nothing to review: {subtask.target} has no commit")
        commit = target.commit
        scores = {str(target.seed): target.metric} if target.metric is not None else {}
        for seed in subtask.seeds:
            metrics = await ctx.grade(commit, seed)
            name = ctx.spec.spec.metric.name
            if metrics is not None and name in metrics:
                scores[str(seed)] = metrics[name]
        critique = judge(target.id, scores, reference=reference_of(subtask),
                         spec=ctx.spec.spec)
        return RoleResult(summary=critique.reason, critique=critique, grade=False, changes=False)


BUILTIN_ROLES: dict[str, type] = {"reproducer": Reproducer, "engineer": Engineer,
                                  "critic": Critic}
