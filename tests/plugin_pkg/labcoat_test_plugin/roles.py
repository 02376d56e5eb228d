"""`ablator`: a custom role that needs no model, shipped the way a third party would ship one."""

from __future__ import annotations

import json
import shlex

from labcoat.agents import RoleContext, RoleResult, Subtask

PARAMS = "/workspace/params.json"


class Ablator:
    """Drops one trial parameter from params.json so that grading shows what it contributed."""

    name = "ablator"
    description = (
        "Removes one component at a time and reports what mattered: drops one trial parameter "
        "from /workspace/params.json (subtask param `drop`, else the first by name) so the "
        "grade of the result shows that parameter's effect. Needs no model."
    )

    async def run(self, subtask: Subtask, ctx: RoleContext) -> RoleResult:
        if ctx.sandbox is None:
            return RoleResult(ok=False, error="ablator needs a sandbox holding the workspace")
        params = await _read_params(ctx)
        if params is None:
            return RoleResult(summary="ablator: no /workspace/params.json, nothing to ablate; "
                                      "the workspace is unchanged", grade=False, changes=False)
        drop = str(subtask.params.get("drop") or (sorted(params)[0] if params else ""))
        if drop not in params:
            known = ", ".join(sorted(params)) or "none"
            return RoleResult(ok=False, error=f"ablator: no parameter {drop!r} in params.json "
                                              f"(it has: {known})")
        kept = {k: v for k, v in params.items() if k != drop}
        await ctx.sandbox.write_file(PARAMS, json.dumps(kept, indent=2, sort_keys=True) + "\n")
        return await _confirm(ctx, drop, params[drop], kept)


async def _read_params(ctx: RoleContext) -> dict[str, object] | None:
    assert ctx.sandbox is not None
    result = await ctx.sandbox.exec(f"test -f {PARAMS} && cat {PARAMS}", timeout_s=30)
    if not result.ok:
        return None
    data = json.loads(result.stdout or "{}")
    return data if isinstance(data, dict) else None


async def _confirm(ctx: RoleContext, drop: str, was: object,
                   kept: dict[str, object]) -> RoleResult:
    """Read the file back inside the sandbox: the summary reports what is really there."""
    assert ctx.sandbox is not None
    check = await ctx.sandbox.exec(f"cat {shlex.quote(PARAMS)}", timeout_s=30)
    ctx.emit("sandbox_exec", {"cmd": f"cat {PARAMS}", "returncode": check.returncode,
                              "duration_s": check.duration_s, "stdout_tail": check.stdout})
    if not check.ok or json.loads(check.stdout) != kept:
        return RoleResult(ok=False, error=f"ablator: params.json did not take the edit: "
                                          f"{check.stderr.strip() or check.stdout.strip()}")
    return RoleResult(summary=f"ablated {drop}={was!r}; kept {', '.join(sorted(kept)) or 'none'}")
