"""The built-in roles: reproducer, engineer, critic.

Without a model (the search brain) each does its job mechanically: the reproducer runs the
unmodified baseline, the engineer applies a trial's parameters, the critic re-grades leaders with
new seeds. With a model they run the shared tool loop (`labcoat.agents.llm.toolloop`).
"""

from __future__ import annotations

import json
from typing import Any

from labcoat.agents.judge import judge, reference_of
from labcoat.agents.role import RoleContext, RoleResult, Subtask
from labcoat.agents.search.propose import show_params
from labcoat.experiment import trial_env
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
                   "establish the reference metric every other result is compared with.")

    async def run(self, subtask: Subtask, ctx: RoleContext) -> RoleResult:
        if ctx.model is not None:
            return await _llm_work(self.name, subtask, ctx)
        spec = ctx.spec.spec
        # In /workspace, exactly where grading runs it (a copy in /tmp would meet a noexec tmpfs
        # capped at 512 MB). Its outputs never reach the result commit: `changes=False` keeps
        # the base tree.
        for cmd in filter(None, [spec.setup, spec.run]):
            res = await exec_logged(ctx, subtask, cmd, env=trial_env({}, subtask.seed))
            if not res.ok:
                return RoleResult(ok=False, error=f"the baseline does not run: {res.describe(cmd)}")
        return RoleResult(summary="ran the unmodified baseline", changes=False)


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
