"""`labcoat report`: report.md (goal, baseline, best and its diff, every subtask, lineage) and a
PNG plot of the metric over iterations. Built from the log and the workspace repo only."""

from __future__ import annotations

import sys
from pathlib import Path

from labcoat.experiment import beats
from labcoat.log import RunState, load_state
from labcoat.log.reproduction import baseline_commit, reproduction_fix
from labcoat.text import inert, num
from labcoat.views import claims, steering
from labcoat.views.status import require_run
from labcoat.workspace import Workspace

PLOT_NAME = "metric.png"


def write_report(run_dir: Path) -> Path:
    """Write `<run_dir>/report.md` (and the plot); return its path."""
    run_dir = Path(run_dir).resolve()
    require_run(run_dir)
    state = load_state(run_dir)
    plot = plot_metric(state, run_dir / PLOT_NAME)
    diff = best_diff(run_dir, state)
    # Summaries, errors and the diff are agent output: `cat report.md` must not run them.
    text = inert(render(state, diff=diff, plot=plot.name if plot else None,
                        fix_diff=fix_diff(run_dir, state)))
    path = run_dir / "report.md"
    path.write_text(text, encoding="utf-8")
    return path


def best_diff(run_dir: Path, state: RunState) -> str:
    best = state.best
    if best is None or not best.commit or not (run_dir / "workspace" / ".git").exists():
        return ""
    return Workspace(run_dir / "workspace").diff(baseline_commit(state), best.commit)


def fix_diff(run_dir: Path, state: RunState) -> str:
    """The reproduction fix's change from the initial workspace ("" without a fix)."""
    fix = reproduction_fix(state)
    if fix is None or not fix.commit or not (run_dir / "workspace" / ".git").exists():
        return ""
    return Workspace(run_dir / "workspace").diff(state.base_commit, fix.commit)


def render(state: RunState, *, diff: str, plot: str | None, fix_diff: str = "") -> str:
    name, best, base = state.metric_name, state.best, state.baseline
    lines = [f"# labcoat report: {state.experiment.get('name', '?')} ({state.run_id})", ""]
    lines += [f"**Goal.** {state.config.get('goal', '')}", ""]
    lines += [f"- status: **{state.status}**" + (f" ({state.stop_reason})" if state.stop_reason
                                                  else ""),
              f"- brain: `{state.brain}`, seed {state.seed}, iterations {state.iteration}",
              f"- metric: `{name}` ({state.direction})",
              f"- baseline: **{num(base)}**",
              f"- best: **{num(best.metric if best else None)}**"
              + (f" from `{best.subtask}` (commit `{(best.commit or '')[:10]}`, "
                 "branch `labcoat/best`)" if best else ""),
              f"- model cost: {cost_line(state)}", ""]
    if plot:
        lines += [f"![{name} over iterations]({plot})", ""]
    lines += claims.report_lines(state, fix_diff)
    lines += [*subtask_table(state), "", *lineage(state), "", *steering.report_lines(state)]
    if diff:
        lines += ["## Best result's change from the baseline", "", "```diff", diff, "```", ""]
    return "\n".join(lines)


def cost_line(state: RunState) -> str:
    total = state.cost.total
    if total.calls == 0:
        return "none (no model calls)"
    if total.unknown_cost_calls == total.calls:  # a local or unpriced model: never a silent $0
        return (f"unknown (no price for the model) over {total.calls} call(s), "
                f"{total.tokens} tokens")
    unknown = (f", plus {total.unknown_cost_calls} call(s) of unknown price"
               if total.unknown_cost_calls else "")
    return f"${total.usd:.4f} over {total.calls} call(s), {total.tokens} tokens{unknown}"


def subtask_table(state: RunState) -> list[str]:
    rows = ["## Subtasks", "",
            "| id | iteration | role | status | metric | verdict | commit | summary |",
            "|---|---|---|---|---|---|---|---|"]
    for s in state.subtasks.values():
        summary = (s.summary or s.error or s.subtask.get("instructions", "")).replace("|", "\\|")
        summary = " ".join(summary.split())[:140]
        rows.append(f"| {s.id} | {s.iteration} | {s.role} | {s.status} | {num(s.metric)} | "
                    f"{s.verdict or ''} | {(s.commit or '')[:10]} | {summary} |")
    return rows


def lineage(state: RunState) -> list[str]:
    """Each result commit and the commit it started from."""
    names = {state.base_commit: "baseline (initial commit)"}
    for s in state.subtasks.values():
        if s.commit:
            names[s.commit] = s.id
    rows = ["## Lineage", "", f"- `{state.base_commit[:10]}` initial workspace"]
    for s in state.subtasks.values():
        if s.commit:
            parent = s.subtask.get("base_commit", "")
            rows.append(f"- `{s.commit[:10]}` {s.id} ({s.role}, {num(s.metric)}) "
                        f"from `{parent[:10]}` {names.get(parent, '')}")
    return rows


def plot_metric(state: RunState, path: Path) -> Path | None:
    """Every graded result per iteration, the best so far (results the critic could not
    reproduce are marked and never count as best), and the baseline."""
    points = [(s.iteration, s.metric, s.role) for s in state.subtasks.values()
              if s.metric is not None and s.verdict != "not_reproducible"]
    refuted = [(s.iteration, s.metric) for s in state.subtasks.values()
               if s.metric is not None and s.verdict == "not_reproducible"]
    if not points and not refuted:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for role in sorted({p[2] for p in points}):
        xs = [p[0] for p in points if p[2] == role]
        ys = [p[1] for p in points if p[2] == role]
        ax.scatter(xs, ys, label=role, alpha=0.8)
    if refuted:
        ax.scatter([p[0] for p in refuted], [p[1] for p in refuted], marker="x", color="red",
                   label="not reproducible")
    xs, best = best_so_far(state, points)
    ax.step(xs, best, where="post", color="black", label="best so far")
    if state.baseline is not None:
        ax.axhline(state.baseline, color="grey", linestyle="--", label="baseline")
    ax.set(xlabel="iteration", ylabel=state.metric_name, title=f"{state.metric_name} per iteration")
    ax.set_xticks(sorted({p[0] for p in points} | {p[0] for p in refuted}))
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def best_so_far(state: RunState, points: list[tuple[int, float, str]],
                ) -> tuple[list[int], list[float]]:
    xs: list[int] = []
    ys: list[float] = []
    current: float | None = None
    for it in sorted({p[0] for p in points}):
        for _, value, _ in (p for p in points if p[0] == it):
            if beats(value, current, state.direction):
                current = value
        if current is not None:
            xs.append(it)
            ys.append(current)
    return xs, ys


def summarize(run_dir: Path, state: RunState) -> None:
    """Write the report and say on stderr where it is and how the best compares."""
    report = write_report(run_dir)
    best, base = state.best, state.baseline
    shown_base = f"{base:.4g}" if base is not None else "n/a"
    shown_best = f"{best.metric:.4g} ({best.subtask}, branch labcoat/best)" if best else "n/a"
    print(f"{state.metric_name}: baseline {shown_base} -> best {shown_best}", file=sys.stderr)
    print(f"report: {report}", file=sys.stderr)
