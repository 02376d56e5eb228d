"""The subtask page as data (`models.SubtaskPage`): what the role was asked, what it changed
(the diff against its base), how it scored per seed, what the critic said, the run and evaluate
logs, its sandbox commands and its full transcript (a page at a time)."""

from __future__ import annotations

import json

from labcoat.log import SubtaskState
from labcoat.views.web.files import listing, read_end
from labcoat.views.web.index import RunIndex
from labcoat.views.web.links import Links, LiveLinks
from labcoat.views.web.models import (
    DiffLine,
    GradeRow,
    LogFile,
    SubtaskPage,
    Verdict,
    shown,
)
from labcoat.views.web.runpage import clock, nav
from labcoat.views.web.transcript import commands_page, transcript_page

DIFF_CAP = 200_000
"""Characters of a diff shown (git's output beyond it is cut with a note)."""


def subtask_page(name: str, index: RunIndex, sid: str, *, t: int = 0, c: int = 0,
                 links: Links | None = None) -> SubtaskPage | None:
    """The page of subtask `sid` (None when the log has no such subtask); `t` and `c` are the
    first transcript entry and the first command shown. Call with `index.lock` held."""
    links = links or LiveLinks(name)
    s = index.state.subtasks.get(sid)
    if s is None:
        return None
    times = index.times.get(sid)
    diff, note = diff_lines(index, s)
    return SubtaskPage(
        nav=nav(name, index), metric=shown(index.state.metric_name or "metric", 100),
        id=shown(s.id, 200), role=shown(s.role, 100),
        iteration=s.iteration, status=s.status, attempts=s.attempts,
        time=_span(times.started, times.ended) if times else "-",
        instructions=shown(s.subtask.get("instructions", "")), params=_params(s),
        seed=s.seed, base=str(s.subtask.get("base_commit", ""))[:12],
        commit=(s.commit or "")[:12], summary=shown(s.summary), error=shown(s.error or ""),
        diff=diff, diff_note=note, grades=_grades(s), verdicts=_verdicts(index, sid),
        critique=_own_critique(index, s),
        logs=_logs(index, sid, links), commands=commands_page(index, sid, c),
        transcript=transcript_page(index, sid, t))


def _span(started: float | None, ended: float | None) -> str:
    if started is None:
        return "-"
    took = f" ({ended - started:.1f} s)" if ended is not None else " (running)"
    return clock(started) + took


def _params(s: SubtaskState) -> str:
    params = s.subtask.get("params") or {}
    return shown(json.dumps(params, indent=2, ensure_ascii=False, default=str)) if params else ""


def _grades(s: SubtaskState) -> list[GradeRow]:
    return [GradeRow(seed=g.seed, metric=g.metric, metrics=dict(g.metrics), ok=g.ok,
                     error=shown(g.error or "", 4000), commit=g.commit[:12])
            for _, g in sorted(s.grades.items())]


def _verdict(critic: str, critique: dict[str, object]) -> Verdict:
    by_seed = critique.get("metrics_by_seed")
    mean, std = critique.get("mean"), critique.get("std")
    return Verdict(critic=shown(critic, 200), target=shown(critique.get("target", ""), 200),
                   verdict=shown(critique.get("verdict", ""), 100),
                   reason=shown(critique.get("reason", "")),
                   mean=mean if isinstance(mean, int | float) else None,
                   std=std if isinstance(std, int | float) else None,
                   by_seed={shown(k, 50): float(v) for k, v in (by_seed or {}).items()
                            if isinstance(v, int | float)} if isinstance(by_seed, dict) else {})


def _own_critique(index: RunIndex, s: SubtaskState) -> Verdict | None:
    """The verdict a reviewing subtask gave: from its result, or from its `critique` event."""
    if s.critique:
        return _verdict(s.id, s.critique)
    mine = [e for found in index.critiques.values() for e in found if e.subtask_id == s.id]
    return _verdict(s.id, mine[-1].model_dump()) if mine else None


def _verdicts(index: RunIndex, sid: str) -> list[Verdict]:
    """Every critique of `sid`'s result: the `critique` events, and a reviewing role's result
    that carries one without such an event."""
    found = [_verdict(e.subtask_id, e.model_dump()) for e in index.critiques.get(sid, ())]
    logged = {e.subtask_id for e in index.critiques.get(sid, ())}
    found += [_verdict(c.id, c.critique) for c in index.state.subtasks.values()
              if c.critique and c.critique.get("target") == sid and c.id not in logged]
    return found


def _logs(index: RunIndex, sid: str, links: Links) -> list[LogFile]:
    logs = []
    for rel, path in listing(index.run_dir, f"artifacts/{sid}"):
        text, cut = read_end(path)
        logs.append(LogFile(name=shown(path.name, 200), href=links.file(rel),
                            size=path.stat().st_size, text=shown(text, end=True), cut=cut))
    return logs


# --- the diff ---------------------------------------------------------------------------------

def diff_lines(index: RunIndex, s: SubtaskState) -> tuple[list[DiffLine], str]:
    """The subtask's change against its base commit, line by line with a kind for colour, and
    a note when there is none to show."""
    base, result = str(s.subtask.get("base_commit") or ""), s.commit or s.tree
    if not base or not result:
        return [], "no result to compare with its base yet" if s.status != "failed" \
            else "the subtask failed: no result"
    try:
        text = raw_diff(index, s)
    except Exception as err:  # git missing, a commit gone: the page says so
        return [], shown(f"no diff: {type(err).__name__}: {err}", 600)
    if not text or not text.strip():
        return [], "no change from its base"
    return [DiffLine(kind=_kind(line), text=shown(line, 4000)) for line in text.splitlines()], ""


def raw_diff(index: RunIndex, s: SubtaskState) -> str | None:
    """`git diff` from the subtask's base to its result (None without both); git's errors
    propagate. Diffs are kept: commits never change."""
    base, result = str(s.subtask.get("base_commit") or ""), s.commit or s.tree
    if not base or not result:
        return None
    text = index.diffs.get((base, result))
    if text is None:
        from labcoat.workspace import Workspace

        ws = Workspace(index.run_dir / "workspace")
        try:
            text = ws.diff(base, result, max_chars=DIFF_CAP)
        finally:
            ws.repo.close()
        index.diffs[(base, result)] = text
    return text


def _kind(line: str) -> str:
    if line.startswith(("diff --git", "+++ ", "--- ")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    if line.startswith("+"):
        return "add"
    if line.startswith("-"):
        return "del"
    if line.startswith(("index ", "new file", "deleted file", "similarity", "rename ", " ")):
        return "meta" if not line.startswith(" ") else "context"
    return "meta"
