"""The viewer's pages as data: one pydantic model per page, served as JSON and rendered as HTML.

Every string that an agent or a sandbox produced is already made inert here (`shown`): control
characters as visible escapes, long texts cut with a note. The templates escape it for HTML.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from labcoat.text import inert, middle, tail

TEXT_CAP = 20_000
"""Characters of one text shown on a page (the rest is counted in a marker)."""


def shown(text: object, cap: int = TEXT_CAP, *, end: bool = False) -> str:
    """Agent or sandbox text as a page shows it: inert, and cut to about `cap` characters (its
    start and end, or only its end when `end` is set: logs)."""
    value = "" if text is None else str(text)
    return inert(tail(value, cap) if end else middle(value, cap))


class Page(BaseModel):
    model_config = ConfigDict(frozen=True)


class Nav(Page):
    """Where a page sits: the run it belongs to, for the header and the links."""

    name: str
    """The run directory's name (what the URLs use)."""
    run_id: str
    experiment: str
    status: str
    live: bool
    """True while the run may still append events (not finished or failed)."""


# --- the runs index ---------------------------------------------------------------------------

class RunRow(Page):
    name: str
    run_id: str
    experiment: str
    status: str
    metric: str
    direction: str
    best: float | None
    baseline: float | None
    cost: str
    started: str
    started_ts: float
    problem: str | None = None


class RunsPage(Page):
    root: str
    runs: list[RunRow]
    problem: str | None = None
    """Why there is no run to list (no folder, an empty one)."""


class Paged(Page):
    """A window of a long list: items `start` to `end` of `total`, and where the neighbouring
    windows start (None at either end)."""

    total: int
    start: int
    end: int
    """One past the last item shown."""
    prev: int | None
    next: int | None


def window(total: int, start: int | None, size: int) -> Paged:
    """The window of `size` items that holds item `start` (None: the last window)."""
    last = max(total - 1, 0) // size * size
    first = last if start is None else min(max(start, 0), last) // size * size
    return Paged(total=total, start=first, end=min(first + size, total),
                 prev=first - size if first >= size else None,
                 next=first + size if first + size < total else None)


# --- the run page -----------------------------------------------------------------------------

class ChartPoint(Page):
    x: float
    y: float
    value: float | None
    subtask: str
    href: str
    label: str
    kind: str
    """own (the subtask's own seed), seed (a re-run with another seed), refuted, failed."""


class Chart(Page):
    width: int
    height: int
    points: list[ChartPoint]
    best_path: str
    """SVG path data of the best-so-far step line."""
    baseline_y: float | None
    y_ticks: list[tuple[float, str]]
    bands: list[tuple[float, float, str]]
    """Iterations along the x axis: (x from, x to, label)."""
    metric: str
    empty: bool
    total: int = 0
    """Graded results in the run (the chart draws the latest `MAX_POINTS`)."""


class TreeNode(Page):
    x: float
    y: float
    subtask: str
    href: str
    label: str
    fill: str
    badge: str
    """The critic's verdict on it, shortened ("" when none)."""
    best: bool
    title: str


class Tree(Page):
    width: int
    height: int
    nodes: list[TreeNode]
    edges: list[tuple[float, float, float, float]]
    total: int = 0
    """Subtasks in the tree's reach (it draws the newest `MAX_NODES` and their lineage)."""


class SubtaskRow(Page):
    id: str
    iteration: int
    role: str
    status: str
    metric: float | None
    seeds: int
    verdict: str
    commit: str
    summary: str


class ClaimRow(Page):
    """One of experiment.yaml's claims and the reproducer's verdict on it."""

    number: int
    """1-based, in experiment.yaml's order."""
    metric: str
    claimed: str
    """`0.995 ± 0.005`."""
    source: str
    measured: str
    """`0.9812 ± 0.0021 over seeds 0, 1, 2`, or `-` before the check."""
    verdict: str
    """reproduced, not_reproduced, inconclusive, or unchecked."""
    reason: str


class Reproduction(Page):
    """The run page's reproduction section: claims, the reproduction fix, a failing baseline."""

    claims: list[ClaimRow]
    fix: str | None = None
    """`it001-01 (commit abc...): what it changed`, when the reproducer had to fix the code."""
    fix_subtask: str | None = None
    failure: str | None = None
    """Why the baseline does not run, when it does not."""


class NoteRow(Page):
    """A person's note, and how a plan took it into account."""

    number: int
    time: str
    text: str
    answer: str | None
    """None until a plan acted on it."""
    answered_in: int | None


class ApprovalRow(Page):
    """A plan whose subtasks waited for a person, and the decision."""

    iteration: int
    time: str
    status: str
    """waiting, approved or rejected."""
    gate: str
    """plans (every plan waits) or spend (worst-case spend over the limit)."""
    subtasks: list[str]
    approved: list[str]
    declined: list[str]
    reason: str
    source: str
    """command or terminal ("" while waiting)."""


class Steering(Page):
    """The run page's section about the person in the loop."""

    notes: list[NoteRow]
    approvals: list[ApprovalRow]
    stops: list[str]
    """Each stop request: `stop` or `stop --now`, and when."""
    waiting: bool
    """A plan waits for a decision now."""


class PlanDigest(Page):
    """What the log said when a plan was made (the manager plans from a digest of it)."""

    events: int
    best: str
    baseline: str
    graded: int
    results: list[str]
    """The latest results before the plan, newest first."""


class PlanView(Page):
    iteration: int
    seq: int
    time: str
    rationale: str
    subtasks: list[tuple[str, str, str]]
    """(id, role, instructions) in plan order."""
    digest: PlanDigest
    manager_calls: int
    """Model calls the manager made for this iteration's plans (a transcript page)."""


class RunPage(Page):
    nav: Nav
    reading: str | None
    """Set while a big log is still being read: how far (the page fills in as it goes)."""
    goal: str
    status: str
    stop_reason: str
    brain: str
    models: dict[str, str]
    seed: int
    iteration: int
    max_iterations: int | None
    budget: list[str]
    metric: str
    direction: str
    best: str
    baseline: str
    cost: str
    events: int
    torn: str | None
    problem: str | None
    subtasks: list[SubtaskRow]
    subtask_pages: Paged
    chart: Chart
    tree: Tree
    plans: list[PlanView]
    """Newest first."""
    plan_pages: Paged
    steering: Steering | None = None
    """None when no person took part (no note, no approval gate, no stop request)."""
    reproduction: Reproduction | None = None
    """None when the experiment makes no claims, nothing was fixed and the baseline runs."""


# --- the subtask page -------------------------------------------------------------------------

class DiffLine(Page):
    kind: str
    """file, hunk, add, del, meta or context: the CSS class that colours it."""
    text: str


class GradeRow(Page):
    seed: int
    metric: float | None
    metrics: dict[str, float]
    ok: bool
    error: str
    commit: str


class Verdict(Page):
    critic: str
    """The critic's subtask id."""
    target: str
    verdict: str
    reason: str
    mean: float | None
    std: float | None
    by_seed: dict[str, float]


class LogFile(Page):
    name: str
    href: str
    size: int
    text: str
    """Its end, inert."""
    cut: bool


class Command(Page):
    seq: int
    time: str
    cmd: str
    returncode: int
    duration_s: float
    flags: str
    stdout: str
    stderr: str


class ToolUse(Page):
    name: str
    arguments: str


class Entry(Page):
    """One step of an agent's transcript: a model call, a tool call or a failed model call."""

    seq: int
    kind: str
    """model, tool or error."""
    time: str
    title: str
    meta: str
    """model, tokens, cost, duration, replayed or bought; tool: ok or error, duration."""
    text: str
    """The assistant's text, the tool's arguments, or the error."""
    result: str | None = None
    """tool: the result the model was shown (None: not in this log)."""
    calls: list[ToolUse] = []
    """model: the tool calls in its reply."""
    bad: bool = False


class TranscriptPage(Paged):
    entries: list[Entry]


class CommandsPage(Paged):
    commands: list[Command]


class SubtaskPage(Page):
    nav: Nav
    metric: str
    id: str
    role: str
    iteration: int
    status: str
    attempts: int
    time: str
    instructions: str
    params: str
    seed: int
    base: str
    commit: str
    summary: str
    error: str
    diff: list[DiffLine]
    diff_note: str
    grades: list[GradeRow]
    verdicts: list[Verdict]
    """Critiques of this subtask's result."""
    critique: Verdict | None
    """This subtask's own critique of another (reviewing roles)."""
    logs: list[LogFile]
    commands: CommandsPage
    transcript: TranscriptPage


class ManagerPage(Page):
    """The manager's model and tool calls while it planned one iteration."""

    nav: Nav
    iteration: int
    transcript: TranscriptPage
