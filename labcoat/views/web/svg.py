"""Geometry of the run page's two pictures, drawn as SVG by the templates (no chart library in
the browser, nothing from a CDN).

    chart(state, points, links)   every graded result in the order graded, iterations as bands,
                                  best so far as a step line, the baseline dashed, refuted marked
    tree(state, links)            each subtask a node placed after the node of its base commit,
                                  coloured by its metric, with the critic's verdict as a badge
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from labcoat.experiment.metric import beats
from labcoat.log import RunState, SubtaskState
from labcoat.text import num
from labcoat.views.web.index import Point
from labcoat.views.web.links import Links
from labcoat.views.web.models import Chart, ChartPoint, Tree, TreeNode, shown

W, H = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 34
MAX_POINTS = 1000
"""Points drawn at most (the newest); a longer run is summarised by its latest results."""
BADGES = {"reproducible": "✓ reproducible", "not_reproducible": "✗ refuted",
          "suspicious": "? suspicious", "ok": "✓ ok"}


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _kind(s: SubtaskState | None, p: Point) -> str:
    if not p.ok or not _finite(p.metric):
        return "failed"
    if s is not None and s.verdict == "not_reproducible":
        return "refuted"
    return "own" if s is None or p.seed == s.seed else "seed"


def _y_scale(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.05 or 1.0
    return lo - pad, hi + pad


def chart(state: RunState, points: Sequence[Point], links: Links) -> Chart:
    """The metric chart of `points` (graded events in log order)."""
    total, points = len(points), points[-MAX_POINTS:]
    values = [p.metric for p in points if p.ok and p.metric is not None and _finite(p.metric)]
    if state.baseline is not None and _finite(state.baseline):
        values.append(state.baseline)
    metric = state.metric_name or "metric"
    if not values:
        return Chart(width=W, height=H, points=[], best_path="", baseline_y=None, y_ticks=[],
                     bands=[], metric=metric, empty=True)
    lo, hi = _y_scale(values)
    step, base = (W - LEFT - RIGHT) / max(len(points), 1), state.baseline

    def y(v: float) -> float:
        return round(TOP + (hi - v) / (hi - lo) * (H - TOP - BOTTOM), 1)

    placed = [_place(state, p, round(LEFT + (i + 0.5) * step, 1), y, links)
              for i, p in enumerate(points)]
    return Chart(width=W, height=H, points=placed, best_path=_best_path(placed, state, y),
                 baseline_y=None if base is None or not _finite(base) else y(base),
                 y_ticks=[(y(lo + (hi - lo) * k / 4), num(lo + (hi - lo) * k / 4))
                          for k in range(5)],
                 bands=_bands(state, points, step), metric=metric, empty=False, total=total)


def _place(state: RunState, p: Point, x: float, y: Callable[[float], float],
           links: Links) -> ChartPoint:
    s = state.subtasks.get(p.subtask)
    kind = _kind(s, p)
    value = "grading failed" if p.metric is None or kind == "failed" else num(p.metric, 6)
    role = s.role if s is not None else "?"
    label = f"{p.subtask} ({role}) seed {p.seed}: {value}" + (
        " (refuted by the critic)" if kind == "refuted" else "")
    ypos = H - BOTTOM if p.metric is None or kind == "failed" else y(p.metric)
    return ChartPoint(x=x, y=ypos, value=p.metric if kind != "failed" else None,
                      subtask=p.subtask, href=links.subtask(p.subtask), label=shown(label, 300),
                      kind=kind)


def _best_path(placed: Sequence[ChartPoint], state: RunState,
               y: Callable[[float], float]) -> str:
    """A step line through the best own-seed result so far (refuted ones never count)."""
    best: float | None = None
    parts: list[str] = []
    for p in placed:
        if p.kind != "own" or p.value is None or not beats(p.value, best, state.direction):
            continue
        parts.append(f"M{p.x},{y(p.value)}" if best is None else f"H{p.x}V{y(p.value)}")
        best = p.value
    if parts:
        parts.append(f"H{placed[-1].x}")
    return " ".join(parts)


def _bands(state: RunState, points: Sequence[Point], step: float) -> list[tuple[float, float,
                                                                                 str]]:
    bands: list[tuple[float, float, str]] = []
    for i, p in enumerate(points):
        s = state.subtasks.get(p.subtask)
        label = f"it{s.iteration}" if s is not None else "?"
        x0 = round(LEFT + i * step, 1)
        if bands and bands[-1][2] == label:
            bands[-1] = (bands[-1][0], round(x0 + step, 1), label)
        else:
            bands.append((x0, round(x0 + step, 1), label))
    return bands


# --- the experiment tree ----------------------------------------------------------------------

ROW, COL, PAD = 26, 150, 20
MAX_NODES = 200
"""The newest subtasks drawn (with the ancestors they grew from); the table lists them all."""


def tree(state: RunState, links: Links, best: str | None = None) -> Tree:
    """Subtasks as a tree: a node's parent is the subtask whose result is its base commit;
    `best` (the best subtask's id) is outlined."""
    subs = [s for s in state.subtasks.values() if s.role != "critic"]
    total = len(subs)
    by_commit = {s.commit: s.id for s in subs if s.commit}
    parent = {s.id: by_commit.get(str(s.subtask.get("base_commit", "")), "") for s in subs}
    keep = _lineage([s.id for s in subs[-MAX_NODES:]], parent)
    subs = [s for s in subs if s.id in keep]
    children: dict[str, list[str]] = {}
    for s in subs:
        children.setdefault(parent[s.id], []).append(s.id)
    rows: dict[str, float] = {}
    depth: dict[str, int] = {"": 0}
    _layout("", children, depth, rows, [0])
    values = [s.metric for s in subs if s.metric is not None and _finite(s.metric)]
    scale = (min(values), max(values)) if values else (0.0, 0.0)
    nodes = [_node(s, depth[s.id], rows[s.id], scale, state, links, best == s.id)
             for s in subs]
    edges = [(_x(depth[parent[s.id]]), _y(rows[parent[s.id]]), _x(depth[s.id]), _y(rows[s.id]))
             for s in subs]
    width = _x(max(depth.values(), default=0)) + COL
    return Tree(width=int(width), height=int(_y(max(rows.values(), default=0)) + ROW),
                nodes=[_root(rows.get("", 0.0), state), *nodes], edges=edges, total=total)


def _lineage(ids: list[str], parent: dict[str, str]) -> set[str]:
    """`ids` and every subtask they grew from."""
    keep: set[str] = set()
    for sid in ids:
        while sid and sid not in keep:
            keep.add(sid)
            sid = parent.get(sid, "")
    return keep


def _layout(node: str, children: dict[str, list[str]], depth: dict[str, int],
            rows: dict[str, float], next_row: list[int]) -> None:
    """Leaves take the next row; a parent sits at the middle of its children (iteratively: a
    chain of thousands of subtasks must not exhaust the recursion limit)."""
    stack: list[tuple[str, bool]] = [(node, False)]
    while stack:
        current, done = stack.pop()
        kids = children.get(current, [])
        if done or not kids:
            rows[current] = ((rows[kids[0]] + rows[kids[-1]]) / 2 if kids
                             else float(_take(next_row)))
            continue
        stack.append((current, True))
        for kid in reversed(kids):
            depth[kid] = depth[current] + 1
            stack.append((kid, False))


def _take(counter: list[int]) -> int:
    counter[0] += 1
    return counter[0] - 1


def _x(depth: int) -> float:
    return PAD + depth * COL


def _y(row: float) -> float:
    return PAD + row * ROW


def _root(row: float, state: RunState) -> TreeNode:
    return TreeNode(x=_x(0), y=_y(row), subtask="", href="", label="start", fill="#d0d7de",
                    badge="", best=False,
                    title=f"the initial workspace {state.base_commit[:10]}")


def _node(s: SubtaskState, depth: int, row: float, scale: tuple[float, float],
          state: RunState, links: Links, best: bool) -> TreeNode:
    metric = "no metric" if s.metric is None else num(s.metric, 6)
    title = f"{s.id} ({s.role}, {s.status}): {metric}" + (" — the best" if best else "")
    return TreeNode(x=_x(depth), y=_y(row), subtask=s.id, href=links.subtask(s.id),
                    label=shown(f"{s.id} {num(s.metric, 4, none='')}", 60),
                    fill=colour(s.metric, scale, state.direction),
                    badge=BADGES.get(s.verdict or "", ""), best=best, title=shown(title, 300))


def colour(value: float | None, scale: tuple[float, float], direction: str) -> str:
    """Red (the worst of `scale`, the run's range) through yellow to green (the best); grey
    without a metric."""
    if value is None or not math.isfinite(value):
        return "#bbbbbb"
    lo, hi = scale
    share = 0.5 if hi == lo else (value - lo) / (hi - lo)
    if not beats(1.0, 0.0, direction):  # minimize: smaller is greener
        share = 1.0 - share
    red = int(220 if share < 0.5 else 220 - (share - 0.5) * 2 * 170)
    green = int(60 + share * 2 * 130 if share < 0.5 else 190)
    return f"#{red:02x}{green:02x}50"
