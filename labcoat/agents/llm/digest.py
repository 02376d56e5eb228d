"""The manager's view of the log: a digest whose size stays bounded however long the run grows.

    text = digest(state, diff=summarize, max_tokens=3000)

Sections, always in this order: the goal and the metric; baseline and best so far; a person's
notes that no plan has acted on yet (oldest first, at most `NOTES_SHOWN`, within half the
budget: the plan must say how it took each one into account); plans a person rejected, with
their reasons (newest first); the latest results (newest first, each with its change
summarised); open critiques; ideas that failed. Each entry is clipped, and entries are taken in
priority order (the person's words, then latest results, critiques, failures) until the
character budget (~4 characters per token) is spent; what did not fit is counted, not silently
dropped. The digest is a pure function of the state (and the git
repository), so a resumed run sends the manager the very same prompt (and its reply replays).
"""

from __future__ import annotations

from collections.abc import Callable

from labcoat.experiment import beats
from labcoat.log import RunState, SubtaskState
from labcoat.log.steering import Approval, Note
from labcoat.text import num, squash

CHARS_PER_TOKEN = 4
DEFAULT_DIGEST_TOKENS = 3000
"""Default token budget of the digest part of the manager's prompt."""
RECENT = 8
"""Latest results described in full (their diff summarised)."""
ENTRY_CHARS = 600
NOTES_SHOWN = 5
"""A person's open notes shown at once (oldest first); the others wait for a later plan."""
NOTES_TITLE = ("Notes from a person, not acted on yet (say in propose_plan's `notes` how you "
               "took each one into account):")
DiffSummary = Callable[[str, str], str]
"""`summary(base_commit, commit)` -> a few lines: files changed and the first changed lines."""


def digest(state: RunState, *, diff: DiffSummary | None = None,
           max_tokens: int = DEFAULT_DIGEST_TOKENS) -> str:
    """The bounded digest of `state` (a `RunState`)."""
    budget = max_tokens * CHARS_PER_TOKEN
    head = header(state)
    budget -= len(head) + 1
    notes = notes_block(state, max_tokens)
    budget -= len(notes) + 2 if notes else 0
    sections = [("Plans a person rejected (newest first):", rejected_plans(state)),
                ("Latest results (newest first):", recent_results(state, diff)),
                ("Open critiques:", open_critiques(state)),
                ("Ideas that failed or did not beat the baseline:", failed_ideas(state))]
    parts = [head, notes] if notes else [head]
    for title, entries in sections:
        taken, budget = take(entries, budget - len(title) - 1)
        if taken:
            parts.append("\n".join([title, *taken]))
    return "\n\n".join(parts)


def take(entries: list[str], budget: int) -> tuple[list[str], int]:
    """Entries that fit in `budget` characters, plus a line counting the rest."""
    out: list[str] = []
    for i, entry in enumerate(entries):
        note = f"  ({len(entries) - i} more not shown)"
        if len(entry) + 1 + len(note) + 1 > budget:
            if budget > len(note):
                out.append(note)
                budget -= len(note) + 1
            break
        out.append(entry)
        budget -= len(entry) + 1
    return out, budget


def header(state: RunState) -> str:
    best = state.best
    done = [s for s in state.subtasks.values() if s.status in ("finished", "failed")]
    lines = [f"Goal: {squash(state.config.get('goal', ''), 800)}",
             f"Metric: {state.metric_name} ({state.direction}); iterations so far: "
             f"{state.iteration}; subtasks done: {len(done)}",
             f"Baseline (unmodified code): {num(state.baseline)}"]
    if best is None:
        lines.append("Best so far: none yet")
    else:
        rec = state.subtasks[best.subtask]
        lines.append(f"Best so far: {best.subtask} ({rec.role}) {num(best.metric)}"
                     f"{' [' + rec.verdict + ']' if rec.verdict else ''}: "
                     f"{squash(rec.summary or rec.subtask.get('instructions', ''), 300)}")
    return "\n".join(lines)


def results(state: RunState) -> list[SubtaskState]:
    """Finished or failed work subtasks (not reviews), newest first."""
    done = [s for s in state.subtasks.values()
            if s.status in ("finished", "failed") and s.role != "critic"]
    return done[::-1]


def recent_results(state: RunState, diff: DiffSummary | None) -> list[str]:
    return [describe(state, s, diff) for s in results(state)[:RECENT]]


def describe(state: RunState, s: SubtaskState, diff: DiffSummary | None) -> str:
    if s.status == "failed":
        outcome = f"FAILED: {squash(s.error or '', 200)}"
    else:
        outcome = f"{state.metric_name} {num(s.metric)}" + (f" [{s.verdict}]" if s.verdict
                                                              else "")
    line = (f"- {s.id} {s.role}: {outcome}. Asked: {squash(s.subtask.get('instructions', ''), 160)}"
            f" Reported: {squash(s.summary, 200) or '-'}")
    base = s.subtask.get("base_commit", "")
    if diff is not None and s.commit and s.changed and base:
        line += f" Change: {squash(diff(base, s.commit), 220)}"
    return squash(line, ENTRY_CHARS)


def open_critiques(state: RunState) -> list[str]:
    """Critic verdicts that doubt a result, newest first."""
    out = []
    for s in reversed(state.subtasks.values()):
        c = s.critique or {}
        if c.get("verdict") in ("suspicious", "not_reproducible"):
            out.append(squash(f"- {c.get('target')}: {c['verdict']} ({s.id}): "
                            f"{c.get('reason', '')}", 300))
    return out


def failed_ideas(state: RunState) -> list[str]:
    """Failed subtasks and results no better than the baseline, newest first."""
    base = state.baseline
    out = []
    for s in results(state)[RECENT:]:
        worse = s.metric is not None and base is not None and not beats(s.metric, base,
                                                                         state.direction)
        if s.status == "failed" or worse or s.verdict == "not_reproducible":
            why = squash(s.error or "", 120) if s.status == "failed" else num(s.metric)
            out.append(squash(f"- {s.id} {s.role}: {s.subtask.get('instructions', '')} -> {why}",
                            240))
    return out


def summarize_diff(text: str, *, lines: int = 6) -> str:
    """`git diff --stat --patch` output to one short line: files, then the first changes."""
    stat = [ln.strip() for ln in text.splitlines() if " | " in ln][:4]
    changed = [ln for ln in text.splitlines()
               if ln[:1] in "+-" and not ln.startswith(("+++", "---"))][:lines]
    return "; ".join(stat) + (" :: " + " / ".join(c[:80] for c in changed) if changed else "")


def shown_notes(state: RunState, max_tokens: int = DEFAULT_DIGEST_TOKENS) -> list[Note]:
    """The open notes the digest shows (the ones the next plan must answer): oldest first, at
    most `NOTES_SHOWN`, within half of the digest's budget."""
    budget = max_tokens * CHARS_PER_TOKEN // 2 - len(NOTES_TITLE)
    out: list[Note] = []
    for note in state.open_notes()[:NOTES_SHOWN]:
        budget -= len(note_entry(note)) + 1
        if budget < 0:
            break
        out.append(note)
    return out


def note_entry(note: Note) -> str:
    return squash(f"- note {note.number}: {note.text}", ENTRY_CHARS)


def notes_block(state: RunState, max_tokens: int) -> str:
    notes = shown_notes(state, max_tokens)
    if not notes:
        return ""
    left = len(state.open_notes()) - len(notes)
    more = [f"  ({left} more note(s) wait for a later plan)"] if left else []
    return "\n".join([NOTES_TITLE, *(note_entry(n) for n in notes), *more])


def rejected_plans(state: RunState) -> list[str]:
    """Subtasks a person declined, with the reason, newest first."""
    return [_declined(a) for a in reversed(state.approvals.values()) if a.declined]


def _declined(a: Approval) -> str:
    what = "; ".join(squash(a.asked.get(sid, sid), 160) for sid in a.declined)
    verdict = f"rejected, reason: {a.reason}" if a.decision == "rejected" else \
        "not approved (the person approved only others)"
    return squash(f"- iteration {a.iteration}: {what} -> {verdict}", ENTRY_CHARS)
