"""The runs index and the run page, as data (`models.RunsPage`, `models.RunPage`)."""

from __future__ import annotations

import time
from itertools import islice

from labcoat.log import RunState, SubtaskState
from labcoat.log.reproduction import baseline_failure, claim_rows, reproduction_fix
from labcoat.text import first_line, num
from labcoat.views.claims import measured
from labcoat.views.report import cost_line
from labcoat.views.web import svg
from labcoat.views.web.catalog import Catalog
from labcoat.views.web.digest import plan_digests
from labcoat.views.web.index import MANAGER, READ_BUDGET_S, Plan, RunIndex, manager_key
from labcoat.views.web.links import Links, LiveLinks
from labcoat.views.web.models import (
    ClaimRow,
    Nav,
    PlanDigest,
    PlanView,
    Reproduction,
    RunPage,
    RunRow,
    RunsPage,
    SubtaskRow,
    shown,
    window,
)
from labcoat.views.web.steering import steering

LIVE = frozenset({"new", "running", "paused"})
"""Statuses of a run that may still append events (a paused run resumes)."""


def clock(ts: float | None) -> str:
    """A time stamp for people (local time), "-" without one."""
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def cost_text(state: RunState) -> str:
    return cost_line(state)


def _status(index: RunIndex) -> str:
    if index.problem and index.events == 0:
        return "unreadable"
    return "reading" if index.behind else index.state.status


def nav(name: str, index: RunIndex) -> Nav:
    state = index.state
    return Nav(name=name, run_id=shown(state.run_id or name, 200),
               experiment=shown(state.experiment.get("name", "?"), 200), status=_status(index),
               live=state.status in LIVE and index.problem is None)


def runs_page(catalog: Catalog) -> RunsPage:
    """Every run under the folder, newest first."""
    rows, deadline = [], time.monotonic() + READ_BUDGET_S
    for name in catalog.names():  # big logs are read over several visits, within one budget
        index = catalog.index(name, budget_s=max(deadline - time.monotonic(), 0.02))
        if index is not None:
            rows.append(_row(name, index))
    rows.sort(key=lambda r: (r.started_ts, r.name), reverse=True)
    return RunsPage(root=str(catalog.target), runs=rows, problem=catalog.problem())


def _row(name: str, index: RunIndex) -> RunRow:
    state = index.state
    best = state.best
    return RunRow(name=name, run_id=shown(state.run_id or name, 200),
                  experiment=shown(state.experiment.get("name", "?"), 200),
                  status=_status(index), metric=shown(state.metric_name or "?", 100),
                  direction=state.direction, best=None if best is None else best.metric,
                  baseline=state.baseline, cost=cost_text(state), started=clock(state.started_ts),
                  started_ts=state.started_ts or 0.0,
                  problem=None if index.problem is None else shown(index.problem, 2000))


SUBTASK_ROWS = 100
"""Subtasks in the run page's table at once (the latest by default)."""
PLANS_SHOWN = 10
"""Plans on the run page at once (the newest first)."""


def run_page(name: str, index: RunIndex, links: Links | None = None, *, s: int | None = None,
             p: int = 0) -> RunPage:
    """The run page's data (`s`: first subtask row, None for the latest; `p`: first plan,
    newest first); call with `index.lock` held."""
    links = links or LiveLinks(name)
    state = index.state
    best = state.best
    rows, plans = window(len(state.subtasks), s, SUBTASK_ROWS), window(len(index.plans), p,
                                                                       PLANS_SHOWN)
    newest = index.plans[::-1][plans.start:plans.end]
    return RunPage(
        nav=nav(name, index), reading=_reading(index), goal=shown(state.config.get("goal", ""),
                                                                 5000),
        status=_status(index), stop_reason=shown(state.stop_reason or "", 2000),
        brain=shown(state.brain, 200), models=_models(state), seed=state.seed,
        iteration=state.iteration, max_iterations=state.config.get("max_iterations"),
        budget=_budget(state), metric=shown(state.metric_name or "?", 100),
        direction=state.direction,
        best="-" if best is None else f"{num(best.metric, 6)} ({shown(best.subtask, 200)})",
        baseline=num(state.baseline, 6, none="-"), cost=cost_text(state), events=index.events,
        torn=None if index.torn is None else f"line {index.torn.line}: {index.torn.reason}",
        problem=None if index.problem is None else shown(index.problem, 4000),
        subtasks=[_subtask_row(x) for x in islice(state.subtasks.values(), rows.start,
                                                  rows.end)],
        subtask_pages=rows, plan_pages=plans,
        chart=index.memo("chart", (index.version, links.run()),
                         lambda: svg.chart(state, index.points, links)),
        tree=index.memo("tree", (index.version, links.run()),
                        lambda: svg.tree(state, links, best.subtask if best else None)),
        plans=index.memo("plans", (index.version, links.run(), plans.start, _manager_calls(index)),
                         lambda: [_plan(x, d, index) for x, d in
                                  zip(newest, plan_digests(index, newest), strict=True)]),
        reproduction=reproduction(state), steering=steering(state))


def reproduction(state: RunState) -> Reproduction | None:
    """The claims and their verdicts, the reproduction fix, and a baseline that does not run."""
    fix, failure = reproduction_fix(state), baseline_failure(state)
    rows = [ClaimRow(number=c.claim + 1, metric=shown(c.metric, 200),
                     claimed=f"{num(c.value, 6)} ± {num(c.tolerance, 3)}",
                     source=shown(c.source, 500), measured=measured(c), verdict=c.verdict,
                     reason=shown(c.reason, 2000)) for c in claim_rows(state)]
    if not rows and fix is None and failure is None:
        return None
    return Reproduction(
        claims=rows, fix_subtask=None if fix is None else shown(fix.id, 200),
        fix=None if fix is None else shown(f"{fix.id} (commit {(fix.commit or '')[:10]}): "
                                           f"{fix.summary}", 2000),
        failure=None if failure is None else shown(failure, 4000))


def _manager_calls(index: RunIndex) -> int:
    return sum(len(lines) for key, lines in index.calls.items() if key.startswith(MANAGER))


def _reading(index: RunIndex) -> str | None:
    if not index.behind:
        return None
    done = index.size - index.behind
    return (f"reading the log: {index.events} events so far ({done / 1e6:.1f} of "
            f"{index.size / 1e6:.1f} MB); this page fills in as it goes")


def _models(state: RunState) -> dict[str, str]:
    models = {"every role": shown(state.brain or "?", 200)}
    for role, spec in (state.experiment.get("models") or {}).items():
        models[shown(role, 100)] = shown(spec, 200)
    for pair in state.config.get("role_models") or []:
        role, _, spec = str(pair).partition("=")
        models[shown(role, 100)] = shown(spec, 200)
    return models


def _budget(state: RunState) -> list[str]:
    cfg, spent = state.config, state.cost.total
    lines = []
    if cfg.get("budget_usd") is not None:
        lines.append(f"dollars: ${spent.usd:.4f} of ${float(cfg['budget_usd']):.4f}")
    if cfg.get("budget_tokens") is not None:
        lines.append(f"tokens: {spent.tokens} of {cfg['budget_tokens']}")
    if cfg.get("time_limit_s") is not None and state.started_ts and state.last_ts:
        lines.append(f"time: {state.last_ts - state.started_ts:.0f} s of "
                     f"{float(cfg['time_limit_s']):.0f} s")
    if cfg.get("max_iterations") is not None:
        lines.append(f"iterations: {state.iteration} of {cfg['max_iterations']}")
    if state.budget is not None:
        lines.append(f"exhausted: {state.budget.kind} (spent {state.budget.spent:.6g} of "
                     f"{state.budget.limit:.6g})")
    return lines


def _subtask_row(s: SubtaskState) -> SubtaskRow:
    text = s.summary or s.error or str(s.subtask.get("instructions", ""))
    return SubtaskRow(id=shown(s.id, 200), iteration=s.iteration, role=shown(s.role, 100),
                      status=s.status, metric=s.metric, seeds=len(s.grades),
                      verdict=s.verdict or "", commit=(s.commit or "")[:10],
                      summary=shown(first_line(text, 160), 200))


def _plan(plan: Plan, digest: PlanDigest, index: RunIndex) -> PlanView:
    state = index.state
    subtasks = []
    for sid in plan.subtasks:
        sub = state.subtasks.get(sid)
        role, instructions = (sub.role, sub.subtask.get("instructions", "")) if sub else ("?", "")
        subtasks.append((shown(sid, 200), shown(role, 100), shown(instructions, 4000)))
    calls = index.calls.get(manager_key(plan.iteration))
    return PlanView(iteration=plan.iteration, seq=plan.seq, time=clock(plan.ts),
                    rationale=shown(plan.rationale, 4000), subtasks=subtasks,
                    digest=digest, manager_calls=len(calls or ()))
